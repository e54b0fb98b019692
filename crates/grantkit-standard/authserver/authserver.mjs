// The independent authorization server of grantkit-standard's tests.
//
// A launcher around `oidc-provider` (npm; an OpenID Certified OAuth 2.0 / OpenID Connect
// server that grantkit did not write). It configures the server for tests — in-memory
// storage, fixed test clients, one test user, headless consent — and adds nothing to the
// OAuth protocol itself. Besides the server's own endpoints it serves:
//
//   /device                              RFC 8628's verification URI (the server's own,
//                                        with pages that load nothing from elsewhere)
//   /interaction/<uid>                   the consent step: GET shows the page, POST
//   /interaction/<uid>/approve|deny      .../approve or .../deny answers it as the user
//   /grantkit/resource                   a protected resource accepting every access token
//                                        the server issued (also client-credentials ones,
//                                        which the userinfo endpoint refuses)
//   /grantkit/control/expire-access-token  (POST token=...) makes an access token unusable
//                                        as its lifetime ending would; needs the header
//                                        `x-grantkit-control` with the control key
//
// Usage:
//   node authserver.mjs [--port N] [--host 127.0.0.1] [--issuer URL] [--rotate]
//                       [--access-token-ttl SECONDS] [--refresh-token-ttl SECONDS]
//                       [--stdin-lifeline]
//
// --issuer   the issuer URL clients see, when they reach the server through a proxy
//            (default http://HOST:PORT). A proxy must pass the Host header on unchanged.
// --rotate   every refresh rotates the refresh token; reusing a rotated one revokes the
//            whole grant. Without it a refresh returns the same refresh token.
// --stdin-lifeline  exit when stdin closes, so a parent that dies never leaks the server.
//
// The control key comes from the environment (GRANTKIT_AUTHSERVER_CONTROL_KEY); without it
// the control endpoint answers 404.
//
// Once listening, the launcher prints exactly one line on stdout,
//   {"issuer":"http://127.0.0.1:PORT","port":PORT}
// and everything else (the server's notices, error reasons) on stderr.

import { createServer } from 'node:http';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { parseArgs } from 'node:util';
import Provider from 'oidc-provider';

// oidc-provider prints notices with console.info, which is stdout: keep stdout for the
// ready line alone.
console.info = console.error;

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    issuer: { type: 'string' },
    rotate: { type: 'boolean', default: false },
    'access-token-ttl': { type: 'string', default: '300' },
    'refresh-token-ttl': { type: 'string', default: '86400' },
    'stdin-lifeline': { type: 'boolean', default: false },
  },
});

function seconds(name) {
  const value = Number(args[name]);
  if (!Number.isInteger(value) || value <= 0) {
    console.error(`authserver: --${name} must be a positive number of seconds`);
    process.exit(2);
  }
  return value;
}

const accessTokenTtl = seconds('access-token-ttl');
const refreshTokenTtl = seconds('refresh-token-ttl');
const controlKey = process.env.GRANTKIT_AUTHSERVER_CONTROL_KEY ?? '';

// The one user every authorization signs in as, and the user name introspection gives.
const ACCOUNT_ID = 'grantkit-test-user';
const TEST_USERNAME = 'grantkit-tester';

// Native clients may redirect to a loopback URI on any port (RFC 8252 §7.3), so a test
// can listen wherever it finds a free port: http://127.0.0.1:<port>/callback.
const REDIRECT_FLOW = {
  application_type: 'native',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: ['http://127.0.0.1/callback'],
};

const CLIENTS = [
  {
    // Authenticates with client_secret_basic. The secret holds every character that
    // RFC 6749 §2.3.1's form-urlencoding changes; sent unencoded it is refused.
    client_id: 'grantkit-basic',
    client_secret: 'b:a@s+i%c&s=e/c r~e!t',
    token_endpoint_auth_method: 'client_secret_basic',
    ...REDIRECT_FLOW,
  },
  {
    client_id: 'grantkit-post',
    client_secret: 'post-secret-0123456789',
    token_endpoint_auth_method: 'client_secret_post',
    ...REDIRECT_FLOW,
  },
  {
    // A device without a browser (RFC 8628): the user signs in elsewhere with a code.
    client_id: 'grantkit-device',
    client_secret: 'device-secret-0123456789',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
    response_types: [],
    redirect_uris: [],
  },
  {
    // A service: client credentials only, so no redirect URI.
    client_id: 'grantkit-service',
    client_secret: 'service-secret-0123456789',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  },
];

const CONFIGURATION = {
  clients: CLIENTS,
  // A key for this process only: nothing outlives it.
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  // A request left with no known scope ends in access_denied: ask for one of these.
  scopes: ['openid', 'offline_access', 'read', 'write'],
  async findAccount(ctx, sub) {
    return { accountId: sub, async claims() { return { sub }; } };
  },
  // Introspection answers carry these beside `sub`: a client may name its users by a
  // claim other than `sub` (RFC 7662 `username`).
  async extraTokenClaims(ctx, token) {
    return token.accountId ? { username: TEST_USERNAME } : undefined;
  },
  features: {
    // The built-in login pages are for development; the consent step is below.
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    // RFC 8628, with pages that load nothing from elsewhere: the user opens the
    // verification URI, confirms the code, then answers the consent step below.
    deviceFlow: {
      enabled: true,
      async userCodeInputSource(ctx, form) {
        ctx.body = `<!doctype html><meta charset=utf-8><title>Enter the code</title>
${form}<button id=continue type=submit form="op.deviceInputForm">Continue</button>\n`;
      },
      async userCodeConfirmSource(ctx, form, client, deviceInfo, userCode) {
        const text = (value) => String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
        ctx.body = `<!doctype html><meta charset=utf-8><title>Confirm the code</title>
<p>Client <b>${text(client.clientId)}</b> shows the code <code id=code>${text(userCode)}</code>.
${form}<button id=confirm type=submit form="op.deviceConfirmForm">Continue</button>\n`;
      },
      async successSource(ctx) {
        ctx.body = '<!doctype html><meta charset=utf-8><title>Signed in</title><p id=done>Signed in. You can close this page.\n';
      },
    },
    introspection: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
  },
  // PKCE with S256 (the only method offered) from every client, confidential ones too.
  pkce: { required: () => true },
  // Tokens expire exactly: the default accepts them 15 s past `exp`.
  clockTolerance: 0,
  ttl: {
    AccessToken: accessTokenTtl,
    ClientCredentials: accessTokenTtl,
    RefreshToken: refreshTokenTtl,
  },
  // A refresh token for every code grant of a client allowed to refresh. By default an
  // OpenID server issues one only for `offline_access` with `prompt=consent`.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  // Refresh tokens do not die with the (cookie) session of the browser step.
  expiresWithSession: async () => false,
  rotateRefreshToken: args.rotate,
  interactions: {
    url: async (ctx, interaction) => `/interaction/${interaction.uid}`,
  },
};

const server = createServer();
server.on('error', (err) => {
  console.error(`authserver: ${err.message}`);
  process.exit(1);
});

server.listen(Number(args.port), args.host, () => {
  const { port } = server.address();
  const issuer = args.issuer ?? `http://${args.host}:${port}`;
  const provider = new Provider(issuer, CONFIGURATION);

  // Error responses say only e.g. "grant request is invalid"; the reason goes to stderr.
  for (const event of ['authorization.error', 'grant.error', 'revocation.error',
    'introspection.error', 'userinfo.error', 'server_error']) {
    provider.on(event, (ctx, err) => console.error(
      `${event}: ${err.error ?? err.name} (${err.error_detail ?? err.error_description ?? err.message})`,
    ));
  }

  const oidc = provider.callback();
  server.on('request', (req, res) => {
    const path = new URL(req.url, issuer).pathname;
    const route = path.startsWith('/interaction/') ? interaction
      : path === '/grantkit/resource' ? resource
        : path.startsWith('/grantkit/control/') ? control
          : null;
    if (route === null) {
      oidc(req, res);
      return;
    }
    route(provider, req, res, path).catch((err) => {
      console.error(`authserver: ${req.method} ${path}: ${err.message}`);
      if (!res.headersSent) send(res, 400, 'text/plain', 'the request could not be handled\n');
    });
  });

  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
});

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, {
    'content-type': type, 'cache-control': 'no-store', ...headers,
  });
  res.end(body);
}

// The consent step, answered by whoever plays the user's browser. The interaction cookies
// the server set on the way here identify the authorization request.
async function interaction(provider, req, res, path) {
  const [, , uid, decision] = path.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    send(res, 400, 'text/plain', 'this interaction belongs to another request\n');
    return;
  }
  if (req.method === 'GET' && decision === undefined) {
    send(res, 200, 'text/html; charset=utf-8', consentPage(uid, details.params));
    return;
  }
  if (req.method !== 'POST' || !['approve', 'deny'].includes(decision)) {
    send(res, 405, 'text/plain', 'POST to .../approve or .../deny\n');
    return;
  }
  let result;
  if (decision === 'approve') {
    const grant = new provider.Grant({
      accountId: ACCOUNT_ID,
      clientId: details.params.client_id,
    });
    if (details.params.scope) grant.addOIDCScope(details.params.scope);
    result = {
      login: { accountId: ACCOUNT_ID },
      consent: { grantId: await grant.save() },
    };
  } else {
    result = { error: 'access_denied', error_description: 'the user denied the request' };
  }
  // Answers 303 to the authorization endpoint's resume URL, which redirects to the client.
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
}

function consentPage(uid, params) {
  const text = (value) => String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html><meta charset=utf-8><title>Consent</title>
<p>Client <b>${text(params.client_id)}</b> asks for <b>${text(params.scope)}</b>
on behalf of ${ACCOUNT_ID}.
<form method=post action="/interaction/${text(uid)}/approve"><button>Approve</button></form>
<form method=post action="/interaction/${text(uid)}/deny"><button>Deny</button></form>\n`;
}

function bearer(req) {
  const match = /^Bearer ([^\s]+)$/i.exec(req.headers.authorization ?? '');
  return match ? match[1] : null;
}

// Any access token the server holds and still accepts, user or client credentials.
async function findAccessToken(provider, value) {
  return (await provider.AccessToken.find(value)) ?? (await provider.ClientCredentials.find(value));
}

async function resource(provider, req, res) {
  const challenge = 'Bearer realm="grantkit-test-resource"';
  const value = bearer(req);
  if (value === null) {
    send(res, 401, 'application/json', '{"error":"invalid_request"}', { 'www-authenticate': challenge });
    return;
  }
  const token = await findAccessToken(provider, value);
  if (!token) {
    send(res, 401, 'application/json', '{"error":"invalid_token"}', {
      'www-authenticate': `${challenge}, error="invalid_token"`,
    });
    return;
  }
  send(res, 200, 'application/json', JSON.stringify({
    client_id: token.clientId,
    sub: token.accountId ?? null,
    scope: token.scope ?? '',
  }));
}

function authorized(req) {
  const given = Buffer.from(String(req.headers['x-grantkit-control'] ?? ''));
  const expected = Buffer.from(controlKey);
  return controlKey !== '' && given.length === expected.length && timingSafeEqual(given, expected);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 16384) throw new Error('the request body is too large');
  }
  return new URLSearchParams(body);
}

async function control(provider, req, res, path) {
  if (!authorized(req)) {
    send(res, 404, 'text/plain', 'not found\n');
    return;
  }
  if (req.method !== 'POST' || path !== '/grantkit/control/expire-access-token') {
    send(res, 404, 'text/plain', 'not found\n');
    return;
  }
  const form = await readForm(req);
  const token = await findAccessToken(provider, form.get('token'));
  if (!token) {
    send(res, 404, 'text/plain', 'no such access token\n');
    return;
  }
  // Gone from the server's store, the token gets the answer an expired one gets
  // (401 invalid_token); the grant and its refresh token live on.
  await token.destroy();
  res.writeHead(204);
  res.end();
}

function stop() {
  // Exit once the server has closed, and in any case soon: nothing must keep the test
  // server alive after its owner let go of it.
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (args['stdin-lifeline']) {
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}
