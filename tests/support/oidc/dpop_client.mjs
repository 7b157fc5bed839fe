// A real DPoP client for the integration tests: proofs made by npm `dpop` (RFC 9449, by the
// author of oidc-provider), with key pairs it generates itself.
//
//   node dpop_client.mjs
//       reads one JSON request per line on stdin and answers one line on stdout:
//       {"key": NAME, "htm": METHOD, "htu": URL, "token": ACCESS_TOKEN?, "skew": SECS?}
//       -> {"proof": JWS}
//       NAME picks a key pair (ES256), made on first use; `token` adds `ath`; `skew` makes
//       the proof at a clock that many seconds off (a stale or future `iat`).

import { createInterface } from 'node:readline';
import * as DPoP from 'dpop';

const keys = new Map();
const realNow = Date.now;

for await (const line of createInterface({ input: process.stdin })) {
  try {
    const request = JSON.parse(line);
    if (!keys.has(request.key)) keys.set(request.key, await DPoP.generateKeyPair('ES256'));
    const keypair = keys.get(request.key);
    if (request.skew) Date.now = () => realNow() + request.skew * 1000;
    let proof;
    try {
      proof = await DPoP.generateProof(keypair, request.htu, request.htm, undefined, request.token ?? undefined);
    } finally {
      Date.now = realNow;
    }
    process.stdout.write(`${JSON.stringify({ proof })}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ error: String(err?.message ?? err) })}\n`);
  }
}
