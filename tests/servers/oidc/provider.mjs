// A real OpenID Connect authorization server for the tests: oidc-provider
// (a certified implementation) on 127.0.0.1, with the authorization code
// flow (PKCE), the device flow (RFC 8628), client credentials, refresh
// token rotation, introspection and revocation, and oidc-provider's own
// development login and consent pages ("devInteractions"), which a test
// drives over plain HTTP with cookies as a browser would.
//
// Usage: node provider.mjs [options as JSON in argv[2]]
//   {"port": 0, "access_ttl": 3600, "client_credentials_ttl": 3600,
//    "device_ttl": 600, "state_file": "/abs/path.json",
//    "offline_access_needs_consent": false,
//    "clients": [...extra client metadata...]}
// Prints one line of JSON to stdout once listening:
//   {"port": 12345, "issuer": "http://127.0.0.1:12345"}
// Then one JSON line per token-related request ({"event": ..., "path"})
// — never a token, code or secret.
//
// Test-only routes (loopback only, like everything here):
//   POST /test/revoke-account?account=ID  destroys every grant of that
//     account, with its tokens: a refresh then gets invalid_grant and
//     introspection says the access tokens are inactive.
//   POST /test/forget-token?token=T  that access token alone stops working
//   GET  /test/secrets  every token/code value held (for leak checks)
//   GET  /test/stats  {"token_requests": n, "grant_types": {...},
//     "authorize": [{"prompt", "scope"}], "tokens": [{"grant_type", "scope"}]}
//     (the parameters of each authorization and token request; null
//     when the request had none)
//   POST /test/reset-stats

import Provider, { interactionPolicy } from 'oidc-provider';

const options = JSON.parse(process.argv[2] || '{}');

// An in-memory adapter that can also find every grant of an account.
const store = new Map();
const grantMembers = new Map(); // grantId -> Set of store keys
const accountGrants = new Map(); // accountId -> Set of grantIds
// With "state_file", the store survives a stop and start (SIGTERM writes
// it), so a test can take the token endpoint away and bring it back.
import fs from 'node:fs';

function loadState(file) {
  if (!file || !fs.existsSync(file)) return;
  const saved = JSON.parse(fs.readFileSync(file, 'utf8'));
  for (const [k, v] of saved.store) store.set(k, { payload: v.payload, expiresAt: v.expiresAt ?? Infinity });
  for (const [k, v] of saved.grantMembers) grantMembers.set(k, new Set(v));
  for (const [k, v] of saved.accountGrants) accountGrants.set(k, new Set(v));
}

function saveState(file) {
  if (!file) return;
  const finite = (e) => ({ payload: e.payload, expiresAt: Number.isFinite(e.expiresAt) ? e.expiresAt : null });
  const saved = {
    store: [...store].map(([k, v]) => [k, finite(v)]),
    grantMembers: [...grantMembers].map(([k, v]) => [k, [...v]]),
    accountGrants: [...accountGrants].map(([k, v]) => [k, [...v]]),
  };
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(saved));
  fs.renameSync(`${file}.tmp`, file);
}

const grantable = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'ClientCredentials']);

function expiry(expiresIn) {
  return typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
}

class Adapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  get(key) {
    const entry = store.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    store.set(key, { payload, expiresAt: expiry(expiresIn) });
    if (this.model === 'Session' && payload.uid) {
      store.set(`sessionUid:${payload.uid}`, { payload: id, expiresAt: expiry(expiresIn) });
    }
    if (payload.userCode) {
      store.set(`userCode:${payload.userCode}`, { payload: id, expiresAt: expiry(expiresIn) });
    }
    if (grantable.has(this.model) && payload.grantId) {
      if (!grantMembers.has(payload.grantId)) grantMembers.set(payload.grantId, new Set());
      grantMembers.get(payload.grantId).add(key);
    }
    if (this.model === 'Grant' && payload.accountId) {
      if (!accountGrants.has(payload.accountId)) accountGrants.set(payload.accountId, new Set());
      accountGrants.get(payload.accountId).add(id);
    }
  }

  async find(id) {
    return this.get(this.key(id));
  }

  async findByUid(uid) {
    const id = this.get(`sessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = this.get(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = this.get(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of grantMembers.get(grantId) ?? []) store.delete(key);
    grantMembers.delete(grantId);
  }
}

loadState(options.state_file);

const accessTtl = options.access_ttl ?? 3600;
const clients = [
  {
    // The public client a desktop program uses (no secret): loopback
    // redirect on any port (RFC 8252 §7.3, application_type native).
    client_id: 'smtpbridge-public',
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    redirect_uris: ['http://127.0.0.1/'],
    grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
    response_types: ['code'],
  },
  {
    // A confidential client: the app-only (client credentials) flow, and
    // the browser flow with a secret.
    client_id: 'smtpbridge-app',
    client_secret: 'app-secret-0123456789abcdef',
    application_type: 'native',
    token_endpoint_auth_method: 'client_secret_post',
    redirect_uris: ['http://127.0.0.1/'],
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    response_types: ['code'],
  },
  {
    // The resource server (the test SMTP server, a Graph stand-in): it
    // introspects tokens.
    client_id: 'resource-server',
    client_secret: 'resource-secret-0123456789abcdef',
    token_endpoint_auth_method: 'client_secret_basic',
    redirect_uris: [],
    grant_types: [],
    response_types: [],
  },
  ...(options.clients ?? []),
];

// prompt=select_account is accepted, as Microsoft's and Google's
// authorization endpoints accept it: the development login page, where the
// account is typed in, is the account picker, so the prompt adds no step.
const policy = interactionPolicy.base();
const selectAccount = new interactionPolicy.Prompt({ name: 'select_account', requestable: true });
selectAccount.checks.clear();
policy.add(selectAccount, 0);

const configuration = {
  adapter: Adapter,
  interactions: { policy },
  clients,
  // Every account exists; its id is what the login page was given.
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.test`, email_verified: true, preferred_username: `${id}@example.test` };
      },
    };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'smtp.send', 'mail.send'],
  // The ID token carries the scopes' claims (preferred_username, email).
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
  },
  pkce: { required: () => true },
  rotateRefreshToken: true,
  ttl: {
    AccessToken: accessTtl,
    ClientCredentials: options.client_credentials_ttl ?? accessTtl,
    DeviceCode: options.device_ttl ?? 600,
    RefreshToken: 14 * 24 * 3600,
    Grant: 14 * 24 * 3600,
    Session: 24 * 3600,
    Interaction: 3600,
    AuthorizationCode: 60,
    IdToken: 3600,
  },
  // Offline access (a refresh token) whenever the client may refresh.
  issueRefreshToken: async (ctx, client, code) =>
    client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
  cookies: { keys: ['test-only-cookie-key-0123456789'] },
  renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
};

const port = options.port ?? 0;
// The issuer needs the port; listen first on the asked port, then build.
import http from 'node:http';

const probe = http.createServer();
await new Promise((resolve) => probe.listen(port, '127.0.0.1', resolve));
const actualPort = probe.address().port;
await new Promise((resolve) => probe.close(resolve));

const issuer = `http://127.0.0.1:${actualPort}`;
const provider = new Provider(issuer, configuration);
provider.proxy = false;

// Interactions: the development login page takes any login; consent
// grants every scope asked for (including offline_access).
provider.on('grant.error', () => {});
provider.on('server_error', (ctx, err) => {
  process.stdout.write(`${JSON.stringify({ event: 'server_error', message: String(err && err.message) })}\n`);
});

const stats = { token_requests: 0, grant_types: {}, authorize: [], tokens: [] };

provider.use(async (ctx, next) => {
  if (ctx.path === '/test/revoke-account' && ctx.method === 'POST') {
    const account = ctx.query.account;
    let revoked = 0;
    for (const grantId of accountGrants.get(account) ?? []) {
      const grant = await provider.Grant.find(grantId);
      await new Adapter('AccessToken').revokeByGrantId(grantId);
      if (grant) await grant.destroy();
      revoked += 1;
    }
    accountGrants.delete(account);
    ctx.type = 'json';
    ctx.body = { revoked };
    return;
  }
  if (ctx.path === '/test/forget-token' && ctx.method === 'POST') {
    // The access token stops being valid; its grant and refresh token
    // live on (unlike RFC 7009 revocation, which oidc-provider applies to
    // the whole grant).
    const forgotten = store.delete(`AccessToken:${ctx.query.token}`);
    ctx.type = 'json';
    ctx.body = { forgotten };
    return;
  }
  if (ctx.path === '/test/secrets') {
    // Every token and code value the provider holds (opaque values are
    // the store ids), so a test can check none of them leaked anywhere.
    const secrets = [];
    for (const key of store.keys()) {
      const [model, id] = [key.slice(0, key.indexOf(':')), key.slice(key.indexOf(':') + 1)];
      if (['AccessToken', 'RefreshToken', 'AuthorizationCode', 'DeviceCode', 'ClientCredentials'].includes(model)) {
        secrets.push(id);
      }
    }
    ctx.type = 'json';
    ctx.body = { secrets, client_secrets: clients.filter((c) => c.client_secret).map((c) => c.client_secret) };
    return;
  }
  if (ctx.path === '/test/stats') {
    ctx.type = 'json';
    ctx.body = stats;
    return;
  }
  if (ctx.path === '/test/reset-stats' && ctx.method === 'POST') {
    stats.token_requests = 0;
    stats.grant_types = {};
    stats.authorize = [];
    stats.tokens = [];
    ctx.type = 'json';
    ctx.body = stats;
    return;
  }
  if (ctx.path === '/auth' && ctx.method === 'GET') {
    stats.authorize.push({ prompt: ctx.query.prompt ?? null, scope: ctx.query.scope ?? null });
    // oidc-provider follows OpenID Connect Core §11 to the letter: it
    // drops offline_access unless prompt has consent. Microsoft, Auth0,
    // Okta and Keycloak issue a refresh token for offline_access alone;
    // so does this server unless "offline_access_needs_consent" is set.
    const prompts = (ctx.query.prompt ?? '').split(' ').filter(Boolean);
    if (!options.offline_access_needs_consent && (ctx.query.scope ?? '').split(' ').includes('offline_access')
        && !prompts.includes('consent')) {
      ctx.query = { ...ctx.query, prompt: [...prompts, 'consent'].join(' ') };
    }
  }
  await next();
  if (ctx.path === '/token' && ctx.method === 'POST') {
    const grantType = (ctx.oidc && ctx.oidc.params && ctx.oidc.params.grant_type) || 'unknown';
    stats.token_requests += 1;
    stats.tokens.push({ grant_type: grantType, scope: (ctx.oidc && ctx.oidc.params && ctx.oidc.params.scope) ?? null });
    stats.grant_types[grantType] = (stats.grant_types[grantType] ?? 0) + 1;
    const body = ctx.body && typeof ctx.body === 'object' ? ctx.body : {};
    process.stdout.write(
      `${JSON.stringify({ event: 'token', grant_type: grantType, status: ctx.status, error: body.error ?? null })}\n`,
    );
  }
});

const server = provider.listen(actualPort, '127.0.0.1');
server.on('listening', () => {
  process.stdout.write(`${JSON.stringify({ port: actualPort, issuer })}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    saveState(options.state_file);
    server.close();
    process.exit(0);
  });
}
