"""Writes (to stdout) a PKCS#12 file the way Key Vault and .NET export one
with a null password: certificates in an RC2-40 encryptedData, the key in a
3DES pkcs8ShroudedKeyBag, an HMAC-SHA-1 MAC, and every key derived from the
zero-length password (RFC 7292 B.2 step 3), not from the two zero bytes of
an empty BMPString (B.1) that `openssl pkcs12 -passout pass:` uses.

Arguments: key.pem leaf.pem [ca.pem ...]. Standard library plus the openssl
command line (for 3DES and RC2); used by gen.sh."""
import hashlib
import hmac
import os
import subprocess
import sys

PASSWORD = b""  # zero-length: the "null" password
ITERATIONS = 2000


def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag, body):
    return bytes([tag]) + der_len(len(body)) + body


def seq(*items):
    return tlv(0x30, b"".join(items))


def set_of(*items):
    return tlv(0x31, b"".join(sorted(items)))


def octets(b):
    return tlv(0x04, b)


def integer(n):
    return tlv(0x02, n.to_bytes((n.bit_length() + 8) // 8, "big"))


def oid(dotted):
    parts = [int(p) for p in dotted.split(".")]
    out = bytes([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, out)


def explicit0(body):
    return tlv(0xA0, body)


def kdf(salt, ident, n):
    """RFC 7292 appendix B.2 with SHA-1 (u=20, v=64)."""
    v, u = 64, 20
    d = bytes([ident]) * v
    s = (salt * ((v * -(-len(salt) // v)) // len(salt) + 1))[: v * -(-len(salt) // v)] if salt else b""
    p = (PASSWORD * ((v * -(-len(PASSWORD) // v)) // len(PASSWORD) + 1))[: v * -(-len(PASSWORD) // v)] if PASSWORD else b""
    i = bytearray(s + p)
    out = b""
    while len(out) < n:
        a = d + bytes(i)
        for _ in range(ITERATIONS):
            a = hashlib.sha1(a).digest()
        out += a
        b = (a * (v // u + 1))[:v]
        bint = int.from_bytes(b, "big")
        for j in range(0, len(i), v):
            block = int.from_bytes(i[j:j + v], "big")
            i[j:j + v] = ((block + bint + 1) % (1 << (8 * v))).to_bytes(v, "big")
    return out[:n]


def pbe(cipher, key_len, plaintext, salt):
    key = kdf(salt, 1, key_len)
    iv = kdf(salt, 2, 8)
    return subprocess.run(
        ["openssl", "enc", cipher, "-K", key.hex(), "-iv", iv.hex(),
         "-provider", "legacy", "-provider", "default"],
        input=plaintext, capture_output=True, check=True).stdout


def pem_der(path, *command):
    return subprocess.run(["openssl", *command, "-in", path, "-outform", "DER"],
                          capture_output=True, check=True).stdout


PBE_3DES = "1.2.840.113549.1.12.1.3"
PBE_RC2_40 = "1.2.840.113549.1.12.1.6"
DATA = "1.2.840.113549.1.7.1"
ENCRYPTED_DATA = "1.2.840.113549.1.7.6"
LOCAL_KEY_ID = set_of(seq(oid("1.2.840.113549.1.9.21"), set_of(octets(b"\x01\x00\x00\x00"))))

key = pem_der(sys.argv[1], "pkcs8", "-topk8", "-nocrypt")
certs = [pem_der(path, "x509") for path in sys.argv[2:]]

salt = os.urandom(8)
key_bag = seq(
    oid("1.2.840.113549.1.12.10.1.2"),
    explicit0(seq(seq(oid(PBE_3DES), seq(octets(salt), integer(ITERATIONS))),
                  octets(pbe("-des-ede3-cbc", 24, key, salt)))),
    LOCAL_KEY_ID)
cert_bags = []
for n, cert in enumerate(certs):
    bag = [oid("1.2.840.113549.1.12.10.1.3"),
           explicit0(seq(oid("1.2.840.113549.1.9.22.1"), explicit0(octets(cert))))]
    if n == 0:
        bag.append(LOCAL_KEY_ID)
    cert_bags.append(seq(*bag))

salt = os.urandom(8)
encrypted_certs = pbe("-rc2-40-cbc", 5, seq(*cert_bags), salt)
certs_info = seq(oid(ENCRYPTED_DATA), explicit0(seq(
    integer(0),
    seq(oid(DATA), seq(oid(PBE_RC2_40), seq(octets(salt), integer(ITERATIONS))),
        tlv(0x80, encrypted_certs)))))
key_info = seq(oid(DATA), explicit0(octets(seq(key_bag))))
auth_safe = seq(certs_info, key_info)

mac_salt = os.urandom(8)
mac = hmac.new(kdf(mac_salt, 3, 20), auth_safe, hashlib.sha1).digest()
PASSWORD = b"\0\0"
assert hmac.new(kdf(mac_salt, 3, 20), auth_safe, hashlib.sha1).digest() != mac
mac_data = seq(seq(seq(oid("1.3.14.3.2.26"), tlv(0x05, b"")), octets(mac)), octets(mac_salt), integer(ITERATIONS))
sys.stdout.buffer.write(seq(integer(3), seq(oid(DATA), explicit0(octets(auth_safe))), mac_data))
