// A real OpenID provider (panva/oidc-provider) for people signing in through
// the gateway's pages: the gateway is a confidential client using the
// authorization code flow with PKCE; the provider's own development login
// form signs anyone in (any password), with e-mail and groups claims.
// Usage: node login-provider.mjs <port> <redirect_uri> <client_secret>
import Provider from 'oidc-provider';
import { generateKeyPairSync } from 'node:crypto';

const port = Number(process.argv[2]);
const redirectUri = process.argv[3];
const clientSecret = process.argv[4];
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'login-key', use: 'sig', alg: 'RS256' };
const issuer = `http://127.0.0.1:${port}`;

// Who is in which group, as a directory would say.
const GROUPS = {
  bob: ['copilot-approvers'],
  carol: ['copilot-auditors'],
  // A developer on the security team (its masking overrides apply).
  dana: ['developers', 'security-team'],
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'copilot-jit',
    client_secret: clientSecret,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [redirectUri],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  pkce: { required: () => true },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  // The claims go in the ID token itself, which is all the gateway reads.
  conformIdTokenClaims: false,
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({
      sub: id,
      email: `${id}@example.com`,
      email_verified: true,
      name: id,
      groups: GROUPS[id] || ['developers'],
    }),
  }),
  // First-party client: no consent screen, only the login form.
  loadExistingGrant: async (ctx) => {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile groups');
    await grant.save();
    return grant;
  },
  cookies: { keys: ['test-only-cookie-key'] },
});
provider.listen(port, '127.0.0.1', () => console.log(`ready ${issuer}`));
