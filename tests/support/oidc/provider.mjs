// A real OpenID provider (node-oidc-provider) for the integration tests, on loopback.
//
//   node provider.mjs keygen [RS256|ES256]
//       prints one JSON line {"jwk": <private JWK with kid, alg, use>, "pem": <PKCS#8 PEM>}
//   node provider.mjs serve --keys FILE --resource URI [--port N] [--new-key OUT]
//                           [--client-id ID] [--redirect-uri URI] [--access-token-ttl SECS]
//                           [--dpop]
//       serves the provider on http://127.0.0.1:N (N = 0 picks a free port), signing with the
//       private JWKS in FILE ({"keys": [...]}, the first key signs), and prints
//       `issuer http://127.0.0.1:PORT` on stdout once it accepts connections. With --new-key,
//       it first makes a fresh RS256 key (while node loads the provider), which signs, and
//       writes it to OUT as keygen prints it.
//   ... serve ... --opaque
//       access tokens for the resource are opaque (not JWTs), and the provider has its
//       `introspection` (POST /token/introspection) and `revocation` (POST /token/revocation)
//       endpoints on, with one more client, the resource server (`mcp-resource-server`, secret
//       `mcp-resource-server-secret`, client_secret_basic), which introspects. GET
//       /test/introspections answers {"count": N}: the introspection requests so far.
//
// The provider has two accounts, alice and bob; one public client (authorization code + PKCE,
// refresh tokens, rotated on every use); resource indicators (RFC 8707): access tokens for the
// resource are JWTs signed with the first key, with `aud` = the resource. The login is a tiny
// interaction that a test drives over HTTP without a browser:
//
//   GET  /interaction/UID           -> {"uid": UID, "prompt": "login" | "consent"}
//   POST /interaction/UID/login     form `login=alice` -> 303 back to the authorization endpoint
//   POST /interaction/UID/confirm   -> 303 back to the authorization endpoint (grants all asked)
//
// With --dpop, the `dPoP` feature is on (RFC 9449): a token request with a `DPoP` proof gets
// an access token bound to the proof's key (`cnf.jkt` in the JWT, `token_type` DPoP), and the
// refresh token of the public client is bound to it too.
//
// The provider state (grants, codes, refresh tokens) is in memory: a restart forgets it.

import { generateKeyPair, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const ACCOUNTS = new Set(['alice', 'bob']);
const SCOPE = 'mcp';

// A fresh private key: {jwk (with kid, alg, use), pem (PKCS#8)}. The work runs off the main
// thread, so it overlaps with loading the provider.
async function keygen(alg = 'RS256') {
  const { privateKey } = await new Promise((resolve, reject) => {
    const done = (err, publicKey, key) => (err ? reject(err) : resolve({ privateKey: key }));
    if (alg === 'ES256') generateKeyPair('ec', { namedCurve: 'P-256' }, done);
    else generateKeyPair('rsa', { modulusLength: 2048 }, done);
  });
  const jwk = {
    ...privateKey.export({ format: 'jwk' }),
    kid: `${alg.toLowerCase()}-${randomBytes(6).toString('hex')}`,
    alg,
    use: 'sig',
  };
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' });
  return { jwk, pem };
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 16 * 1024) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function serve(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', default: '0' },
      keys: { type: 'string' },
      'new-key': { type: 'string' },
      resource: { type: 'string' },
      'client-id': { type: 'string', default: 'mcp-test-client' },
      'redirect-uri': { type: 'string', default: 'http://127.0.0.1/callback' },
      'access-token-ttl': { type: 'string', default: '600' },
      opaque: { type: 'boolean', default: false },
      dpop: { type: 'boolean', default: false },
    },
  });
  if (!values.keys || !values.resource) throw new Error('serve needs --keys FILE and --resource URI');
  const newKey = values['new-key'] ? keygen('RS256') : undefined;
  const loading = import('oidc-provider');
  const jwks = JSON.parse(readFileSync(values.keys, 'utf8'));
  if (newKey) {
    const key = await newKey;
    writeFileSync(values['new-key'], JSON.stringify(key));
    jwks.keys.unshift(key.jwk);
  }
  const signingAlg = jwks.keys[0].alg;
  const resource = values.resource;
  const accessTokenTTL = Number(values['access-token-ttl']);

  // The issuer URL names the port, so the provider is made once the socket is bound.
  const server = createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(values.port), '127.0.0.1', resolve);
  });
  const issuer = `http://127.0.0.1:${server.address().port}`;

  const { default: Provider, errors } = await loading;
  // --opaque: the resource server's client, which introspects.
  const introspector = {
    client_id: 'mcp-resource-server',
    client_secret: 'mcp-resource-server-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: [],
    response_types: [],
    redirect_uris: [],
  };
  let introspections = 0;
  const provider = new Provider(issuer, {
    clients: [...(values.opaque ? [introspector] : []), {
      client_id: values['client-id'],
      token_endpoint_auth_method: 'none',
      application_type: 'native',
      redirect_uris: [values['redirect-uri']],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    }],
    jwks,
    cookies: { keys: [randomBytes(32).toString('hex')] },
    scopes: ['openid', 'offline_access', SCOPE],
    claims: { openid: ['sub'] },
    async findAccount(_ctx, id) {
      if (!ACCOUNTS.has(id)) return undefined;
      return { accountId: id, async claims() { return { sub: id }; } };
    },
    features: {
      devInteractions: { enabled: false },
      introspection: { enabled: values.opaque },
      revocation: { enabled: values.opaque },
      dPoP: { enabled: values.dpop },
      resourceIndicators: {
        enabled: true,
        async defaultResource(_ctx, _client, oneOf) { return oneOf ?? resource; },
        async useGrantedResource() { return true; },
        async getResourceServerInfo(_ctx, indicator) {
          if (indicator !== resource) throw new errors.InvalidTarget();
          return {
            scope: SCOPE,
            audience: resource,
            accessTokenTTL,
            ...(values.opaque
              ? { accessTokenFormat: 'opaque' }
              : { accessTokenFormat: 'jwt', jwt: { sign: { alg: signingAlg } } }),
          };
        },
      },
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    pkce: { required: () => true },
    enabledJWA: { idTokenSigningAlgValues: [signingAlg] },
    clientDefaults: { id_token_signed_response_alg: signingAlg },
    ttl: {
      AccessToken: accessTokenTTL, Grant: 3600, IdToken: 3600, Interaction: 600, RefreshToken: 3600, Session: 3600,
    },
    renderError(ctx, out) {
      ctx.type = 'application/json';
      ctx.body = out;
    },
  });
  provider.on('server_error', (_ctx, err) => console.error('server_error', err));

  const callback = provider.callback();
  server.on('request', async (req, res) => {
    const url = new URL(req.url, issuer);
    if (values.opaque && url.pathname === '/token/introspection') introspections += 1;
    if (values.opaque && url.pathname === '/test/introspections') {
      sendJson(res, 200, { count: introspections });
      return;
    }
    const match = url.pathname.match(/^\/interaction\/([^/]+)(?:\/(login|confirm))?$/);
    if (!match) {
      callback(req, res);
      return;
    }
    try {
      const details = await provider.interactionDetails(req, res);
      if (details.uid !== match[1]) {
        sendJson(res, 400, { error: 'interaction uid mismatch' });
        return;
      }
      const prompt = details.prompt.name;
      if (!match[2] && req.method === 'GET') {
        sendJson(res, 200, { uid: details.uid, prompt });
      } else if (match[2] === 'login' && req.method === 'POST' && prompt === 'login') {
        const login = (await readForm(req)).get('login');
        if (!ACCOUNTS.has(login)) {
          sendJson(res, 403, { error: 'unknown account', login });
          return;
        }
        await provider.interactionFinished(req, res, { login: { accountId: login } },
          { mergeWithLastSubmission: false });
      } else if (match[2] === 'confirm' && req.method === 'POST' && prompt === 'consent') {
        const { params, session, prompt: { details: missing } } = details;
        const grant = details.grantId
          ? await provider.Grant.find(details.grantId)
          : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
        if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
        if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
        for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
          grant.addResourceScope(indicator, scopes.join(' '));
        }
        const grantId = await grant.save();
        await provider.interactionFinished(req, res,
          { consent: details.grantId ? {} : { grantId } }, { mergeWithLastSubmission: true });
      } else {
        sendJson(res, 400, { error: 'unexpected interaction step', prompt, step: match[2] ?? null });
      }
    } catch (err) {
      console.error('interaction error', err);
      if (!res.headersSent) sendJson(res, 400, { error: String(err?.message ?? err) });
    }
  });

  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
  // Exits with the test that started it: the test holds the other end of stdin.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
  console.error(`oidc-provider on ${issuer}, keys ${jwks.keys.map((k) => k.kid).join(',')}`);
  process.stdout.write(`issuer ${issuer}\n`);
}

const [command, ...rest] = process.argv.slice(2);
try {
  if (command === 'keygen') process.stdout.write(`${JSON.stringify(await keygen(rest[0]))}\n`);
  else if (command === 'serve') await serve(rest);
  else throw new Error('usage: provider.mjs keygen [RS256|ES256] | serve --keys FILE --resource URI');
} catch (err) {
  console.error(err);
  process.exit(2);
}
