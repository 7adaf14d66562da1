// For bench/run.sh: writes a JWKS with one ES256 and one RS256 key to the file named by the first
// argument and prints "ES256 <token>" and "RS256 <token>": tokens valid for a day, signed with
// Node's own crypto (independent of gatehouse), with the claims the bench's jwt_auth route checks.
import crypto from 'node:crypto';
import fs from 'node:fs';

const b64 = (x) => Buffer.from(x).toString('base64url');
const now = Math.floor(Date.now() / 1000);
const claims = { iss: 'https://bench.test/', aud: 'bench', sub: 'bench-user', scope: 'read', iat: now, exp: now + 86400 };

function token(alg, kid, privateKey) {
  const input = `${b64(JSON.stringify({ alg, kid, typ: 'JWT' }))}.${b64(JSON.stringify(claims))}`;
  const sig = alg === 'ES256'
    ? crypto.sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' })
    : crypto.sign('sha256', Buffer.from(input), privateKey);
  return `${input}.${b64(sig)}`;
}

const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
fs.writeFileSync(process.argv[2], JSON.stringify({ keys: [
  { ...ec.publicKey.export({ format: 'jwk' }), kid: 'es', alg: 'ES256', use: 'sig' },
  { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'rs', alg: 'RS256', use: 'sig' },
] }));
console.log(`ES256 ${token('ES256', 'es', ec.privateKey)}`);
console.log(`RS256 ${token('RS256', 'rs', rsa.privateKey)}`);
