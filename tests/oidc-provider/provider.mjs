// A real OpenID provider (panva/oidc-provider) for the identity end-to-end
// test: one client using client credentials, JWT access tokens for the
// resource `urn:copilot-jit`, and a fresh RSA signing key with the given kid.
// Usage: node provider.mjs <port> <kid>
import Provider from 'oidc-provider';
import { generateKeyPairSync } from 'node:crypto';

const port = Number(process.argv[2]);
const kid = process.argv[3];
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' };
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'ci-agent',
    client_secret: 'test-only-client-secret',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
  }],
  jwks: { keys: [jwk] },
  features: {
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:copilot-jit',
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'copilot',
        audience: 'urn:copilot-jit',
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
});
provider.listen(port, '127.0.0.1', () => console.log(`ready ${issuer}`));
