//! `copilot-jit --help`: the commands, and the exit statuses scripts rely on.

pub const USAGE: &str = "\
copilot-jit: just-in-time access to GitHub Copilot through a copilot-jit gateway

Developers
  copilot-jit login [--gateway URL] [--no-browser]
                      sign in with the gateway's device flow (your browser, your IdP)
  copilot-jit request --scopes chat,completions --reason \"…\" [--models M,…]
                      [--duration 2h] [--repository OWNER/NAME] [--wait]
                      ask for access; the policy answers at once; --wait follows
                      it until decided (exit 0 approved, 1 denied or expired)
  copilot-jit configure neovim|jetbrains|vim|vscode|cli [--write]
                      the settings that point that client at the gateway
                      (--write writes them, keeping a .bak of the file it changes)
  copilot-jit status  who you are, your grants and time left, pending requests,
                      signed-in devices, where the credential is kept
  copilot-jit renew [ID] [--duration 2h] [--reason \"…\"] [--wait]
  copilot-jit revoke [ID] [-m \"…\"]   (without ID: all your active grants)
  copilot-jit logout  revoke the sign-in at the gateway and forget it here
  copilot-jit credential
                      print the sign-in credential (what configured editors read)

Approvers
  copilot-jit approvals [--all] [--watch]
                      what you may decide, oldest first (--all: every request you
                      may see; --watch: refresh as requests arrive)
  copilot-jit approve ID [-m \"…\"]
  copilot-jit deny ID -m \"…\"

Auditors and schedulers
  copilot-jit audit verify …   copilot-jit audit seal …   (copilot-jit audit --help)

Every command takes --json (one JSON document on stdout; errors as
{\"error\": {code, message, exit}}) and --gateway URL (else COPILOT_JIT_GATEWAY,
else the gateway you signed in to, else http://127.0.0.1:3000, what
scripts/run-dev.sh serves). NO_COLOR turns colour off. The credential lives in
the OS keyring (Secret Service) where one answers, else in a 0600 file under
$XDG_CONFIG_HOME/copilot-jit (COPILOT_JIT_CREDENTIAL_STORE=file|keyring to choose).

Exit status
  0  done (request --wait: approved)
  1  denied, expired or revoked (request --wait), or refused by policy at once
  2  wrong flags or arguments (also when the gateway finds them invalid)
  3  not signed in, or the sign-in has ended or expired: copilot-jit login
  4  the gateway cannot be reached, or what answers is not a copilot-jit gateway
  5  the gateway refused (not an approver, no such request, conflict, …)
  6  a local file or the keyring could not be read or written
  (audit verify: 0 intact, 1 problems found, 2 could not check; audit seal: 3
   another sealer runs)";
