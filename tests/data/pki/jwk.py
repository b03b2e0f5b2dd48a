"""Prints the JWK (Key Vault's key bundle shape) of a public key given as
SubjectPublicKeyInfo DER. Standard library only; used by gen.sh."""
import base64
import json
import sys


def tlv(buf, pos):
    tag = buf[pos]
    length = buf[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(buf[pos:pos + n], "big")
        pos += n
    return tag, buf[pos:pos + length], pos + length


def children(body):
    pos, out = 0, []
    while pos < len(body):
        tag, value, pos = tlv(body, pos)
        out.append((tag, value))
    return out


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


CURVES = {
    bytes.fromhex("2a8648ce3d030107"): ("P-256", 32),
    bytes.fromhex("2b81040022"): ("P-384", 48),
    bytes.fromhex("2b81040023"): ("P-521", 66),
}

der = open(sys.argv[2], "rb").read()
_, spki, _ = tlv(der, 0)
(_, alg), (_, bits) = children(spki)
alg = children(alg)
point = bits[1:]  # skip the unused-bits byte
if alg[0][1] == bytes.fromhex("2a864886f70d010101"):
    _, rsa, _ = tlv(point, 0)
    (_, n), (_, e) = children(rsa)
    jwk = {"kty": "RSA", "n": b64url(n.lstrip(b"\0")), "e": b64url(e.lstrip(b"\0"))}
else:
    crv, size = CURVES[alg[1][1]]
    assert point[0] == 4 and len(point) == 1 + 2 * size
    jwk = {"kty": "EC", "crv": crv, "x": b64url(point[1:1 + size]), "y": b64url(point[1 + size:])}
json.dump(jwk, sys.stdout, indent=2)
print()
