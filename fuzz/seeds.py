#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/
from the test fixtures (tests/data/pki) and the request and answer shapes
the provider sees. Standard library only; run from anywhere. The seeds are
committed; `make fuzz` grows a scratch corpus from them."""
import base64, json, pathlib, re

ROOT = pathlib.Path(__file__).resolve().parent.parent
PKI = ROOT / "tests" / "data" / "pki"
CORPUS = ROOT / "fuzz" / "corpus"

def pem_der(path):
    text = (PKI / path).read_text()
    blocks = re.findall(r"-----BEGIN [^-]+-----\n(.*?)-----END", text, re.S)
    return [base64.b64decode("".join(b.split())) for b in blocks]

def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)

POD = {
    "csi.storage.k8s.io/pod.name": "busybox",
    "csi.storage.k8s.io/pod.namespace": "blog-post",
    "csi.storage.k8s.io/pod.uid": "8f3a2b1c-0000-4000-8000-000000000001",
    "csi.storage.k8s.io/serviceAccount.name": "kv-access-account",
    "secretProviderClass": "azure-kv",
    "keyvaultName": "kv-blogpost-jx01",
    "tenantId": "f1a2b3c4-5d6e-4f70-8a9b-0c1d2e3f4a5b",
}
OBJECTS = {
    "blog": "array:\n  - |\n    objectName: MySecretPassword\n    objectType: secret\n",
    "all-fields": (
        "array:\n  - |\n    objectName: s1\n    objectAlias: dir/s1.txt\n    objectType: secret\n"
        "    objectVersion: 0123abcd\n    objectEncoding: base64\n    filePermission: \"0600\"\n"
        "  - |\n    objectName: k1\n    objectType: key\n"
        "  - |\n    objectName: c1\n    objectType: cert\n    objectVersionHistory: 3\n"
        "  - |\n    objectName: p1\n    objectType: secret\n    objectFormat: PFX\n"
    ),
    "flow": 'array: ["objectName: a\\nobjectType: secret", "{objectName: b, objectType: key}"]\n',
    "empty-array": "array: []\n",
    "anchors": "x: &a objectName: a\narray:\n  - *a\n  - |\n    objectName: b\n    objectType: cert\n",
    "duplicate": "array:\n  - |\n    objectName: a\n    objectType: secret\n  - |\n    objectName: b\n    objectAlias: a\n    objectType: secret\n",
    "bad-type": "array:\n  - |\n    objectName: a\n    objectType: Secret\n",
    "nested": "array:\n  - |\n    objectName: a\n    objectType: secret\n    extra: [[[{a: [1, 2, {b: c}]}]]]\n",
}

def params_seeds():
    def attrs(**extra):
        a = dict(POD)
        a.update(extra)
        return json.dumps(a)
    tokens = json.dumps({
        "api://AzureADTokenExchange": {"token": "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDB9.c2ln", "expirationTimestamp": "2099-01-01T00:00:00Z"},
        "api://AKSIdentityBinding": {"token": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "expirationTimestamp": "2099-01-01T00:00:00Z"},
    })
    seeds = {
        "workload-identity": (attrs(clientID="4f6f3c2a", objects=OBJECTS["blog"], **{"csi.storage.k8s.io/serviceAccount.tokens": tokens}), "", "420"),
        "service-principal": (attrs(objects=OBJECTS["all-fields"]), json.dumps({"clientid": "c", "clientsecret": "s"}), "420"),
        "vm-identity": (attrs(useVMManagedIdentity="true", userAssignedIdentityID="u", objects=OBJECTS["blog"]), "", "384"),
        "pod-identity": (attrs(usePodIdentity="True", cloudName="AzureChinaCloud", objects=OBJECTS["flow"]), "null", "420"),
        "token-proxy": (attrs(useAzureTokenProxy="1", clientID="c", objects=OBJECTS["blog"]), json.dumps({"csi.storage.k8s.io/serviceAccount.tokens": tokens}), "420"),
        "azure-stack": (attrs(cloudName="AzureStackCloud", cloudEnvFileName="/etc/kubernetes/azurestackcloud.json", objects=OBJECTS["blog"]), "", "420"),
        "misspelled": (attrs(clientId="c", objects=OBJECTS["blog"]), "", "420"),
        "null-values": ('{"csi.storage.k8s.io/pod.name": null, "keyvaultName": "kv"}', "", "0"),
    }
    for name, (a, s, p) in seeds.items():
        write("params", name, f"{a}\0{s}\0{p}")

def objects_seeds():
    for name, yaml in OBJECTS.items():
        write("objects", name, yaml)

def pkcs12_seeds():
    for pfx in sorted(PKI.glob("*.pfx")):
        write("pkcs12", pfx.stem, pfx.read_bytes())

def chain_seeds():
    for family in ["rsa", "ec", "noaki"]:
        leaf, = pem_der(f"{family}/leaf.pem")
        inter, = pem_der(f"{family}/int.pem")
        root, = pem_der(f"{family}/root.pem")
        write("chain", f"{family}-ordered", leaf + inter + root)
        write("chain", f"{family}-reversed", root + inter + leaf)
        write("chain", f"{family}-scrambled", b"".join(pem_der(f"{family}/scrambled-cas.pem")) + leaf)
    write("chain", "p521-leaf", pem_der("p521/leaf.pem")[0])

def key_answer(jwk):
    key = dict(jwk)
    key["kid"] = "https://kv.vault.azure.net/keys/k1/0123456789abcdef0123456789abcdef"
    key["key_ops"] = ["verify"]
    return json.dumps({"key": key, "attributes": {"enabled": True, "created": 1700000000}})

def jwk_seeds():
    for path in sorted((PKI / "jwk").glob("*.json")):
        write("jwk", path.stem, key_answer(json.loads(path.read_text())))

def pem_seeds():
    for family in ["rsa", "ec", "p521"]:
        text = "".join((PKI / family / f).read_text() for f in ["key.pem", "leaf.pem"])
        write("pem", f"{family}-bundle", text)
    write("pem", "headers", "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n")
    write("pem", "crlf", (PKI / "ec" / "leaf.pem").read_text().replace("\n", "\r\n"))

KV = "https://kv.vault.azure.net"
KV_ANSWERS = {
    # selector & 3: 0 secret, 1 key, 2 certificate, 3 list; selector >> 2: status index
    "secret": (0, {"value": "s3cr3t", "id": f"{KV}/secrets/s1/0123456789abcdef0123456789abcdef", "contentType": "text/plain", "attributes": {"enabled": True}}),
    "cert-secret": (0, {"value": "MIIK", "id": f"{KV}/secrets/c1/0123", "contentType": "application/x-pkcs12", "kid": f"{KV}/keys/c1/0123", "managed": True}),
    "key": (1, json.loads(key_answer({"kty": "RSA", "n": "0vx7", "e": "AQAB"}))),
    "certificate": (2, {"id": f"{KV}/certificates/c1/0123", "cer": "MIIBszCCAVmgAwIBAgI=", "kid": f"{KV}/keys/c1/0123", "sid": f"{KV}/secrets/c1/0123"}),
    "list": (3, {"value": [{"id": f"{KV}/secrets/s1/v1", "attributes": {"enabled": True, "created": 1700000000}}, {"id": f"{KV}/secrets/s1/v2", "attributes": {"enabled": False}}, {"kid": f"{KV}/keys/k1/v3", "attributes": {}}], "nextLink": f"{KV}/secrets/s1/versions?api-version=7.4&$skiptoken=abc"}),
    "not-found": (0 | (4 << 2), {"error": {"code": "SecretNotFound", "message": "A secret with (name/id) s1 was not found in this key vault."}}),
    "throttled": (1 | (5 << 2), {"error": {"code": "Throttled", "message": "Request was not processed because too many requests were received.", "innererror": {"code": "x"}}}),
    "forbidden": (2 | (3 << 2), {"error": {"code": "Forbidden", "message": "Caller is not authorized.", "innererror": {"code": "AccessDenied"}}}),
}

def keyvault_seeds():
    for name, (selector, body) in KV_ANSWERS.items():
        write("keyvault", name, bytes([selector]) + json.dumps(body).encode())

def token_seeds():
    answers = {
        # selector & 3: 0 Entra ID, 1 IMDS, 2 NMI, 3 JWT expiry
        "aad": (0, json.dumps({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": "eyJ0eXAiOiJKV1QifQ.e30.c2ln"})),
        "aad-error": (0 | (1 << 2), json.dumps({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1", "error_codes": [7000215], "timestamp": "2024-01-01 00:00:00Z"})),
        "imds": (1, json.dumps({"access_token": "eyJ0eXAi", "client_id": "c", "expires_in": "86399", "expires_on": "1700086399", "resource": "https://vault.azure.net", "token_type": "Bearer"})),
        "imds-error": (1 | (2 << 2), json.dumps({"error": "invalid_request", "error_description": "Identity not found"})),
        "nmi": (2, json.dumps({"token": {"access_token": "eyJ0eXAi", "expires_in": "3599", "expires_on": "1700003599", "resource": "https://vault.azure.net", "token_type": "Bearer"}, "clientid": "c"})),
        "nmi-error": (2 | (4 << 2), "failed to get service principal token for pod:default/p, error: no AzureAssignedIdentity found\n"),
        "jwt": (3, "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDAsImF1ZCI6WyJhcGk6Ly9BenVyZUFEVG9rZW5FeGNoYW5nZSJdfQ.c2ln"),
    }
    for name, (selector, body) in answers.items():
        write("token", name, bytes([selector]) + body.encode())

def secret_seeds():
    bundle = (PKI / "rsa" / "key.pem").read_text() + (PKI / "rsa" / "leaf.pem").read_text()
    pfx64 = base64.b64encode((PKI / "rsa-kv.pfx").read_bytes()).decode()
    wrapped = "\n".join(pfx64[i:i + 76] for i in range(0, len(pfx64), 76))
    seeds = {
        # bits 0-1 encoding (utf-8, base64, hex), 2-3 content type (none,
        # pem, pkcs12, other), 4 PFX format, 5 no chain, 6 .crt/.key files,
        # 7 history slot
        "plain": (0x00, "s3cr3t"),
        "base64": (0x01, "aGVsbG8gd29ybGQ="),
        "hex": (0x02, "68656c6c6f"),
        "pem-bundle": (0x04 | 0x40, bundle),
        "pkcs12": (0x08, pfx64),
        "pkcs12-wrapped-split": (0x08 | 0x40 | 0x80, wrapped),
        "pkcs12-pfx": (0x08 | 0x10, pfx64),
        "unknown-type": (0x0c, "x"),
    }
    for name, (selector, value) in seeds.items():
        write("secret", name, bytes([selector]) + value.encode())

def jmespath_seeds():
    doc = json.dumps({"username": "admin", "password": "p@ss", "nested": {"list": [1, 2, {"k": "v"}]}, "n": None})
    for name, path in {"field": "username", "nested": "nested.list[2].k", "filter": "nested.list[?k=='v'] | [0]",
                       "functions": "length(keys(@))", "multiselect": "{u: username, p: password}", "slice": "nested.list[::-1]",
                       "null": "n", "bad": "username[", "literal": "`{\"a\": 1}`"}.items():
        write("jmespath", name, f"{path}\0{doc}")
    write("jmespath", "not-json", "username\0not json")

def authority_seeds():
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    def frame(kind, flags, stream, payload):
        return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
    def literal(name, value):
        # literal header field without indexing, new name, no Huffman
        return bytes([0x00, len(name)]) + name + bytes([len(value)]) + value
    def block(authority):
        return (bytes([0x83, 0x86]) + literal(b":path", b"/v1alpha1.CSIDriverProvider/Version")
                + literal(b":authority", authority) + literal(b"content-type", b"application/grpc")
                + literal(b"te", b"trailers"))
    settings = frame(0x4, 0, 0, b"")
    write("authority", "localhost", preface + settings + frame(0x1, 0x4, 1, block(b"localhost")))
    write("authority", "socket-path", preface + settings + frame(0x1, 0x4, 1, block(b"/var/run/secrets-store-csi-providers/azure.sock")))
    write("authority", "percent-encoded", preface + settings + frame(0x1, 0x4, 1, block(b"var%2Frun%2Fazure.sock")))
    hb = block(b"/tmp/a.sock")
    write("authority", "continuation", preface + settings + frame(0x1, 0x0, 1, hb[:10]) + frame(0x9, 0x4, 1, hb[10:])
          + frame(0x0, 0x1, 1, b"\0\0\0\0\0"))
    write("authority", "padded-priority", preface + settings + frame(0x1, 0x4 | 0x8 | 0x20, 3, bytes([2]) + bytes(5) + block(b"/s") + bytes(2)))
    write("authority", "bad-preface", b"GET / HTTP/1.1\r\n\r\n")

def spc_seeds():
    blog = (ROOT / "deploy" / "examples" / "secretproviderclass.yaml").read_text()
    write("spc", "blog", blog)
    write("spc", "minimal", "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: x\nspec:\n  provider: azure\n  parameters:\n    keyvaultName: kv\n")
    write("spc", "no-name", "kind: SecretProviderClass\nspec:\n  provider: azure\n")
    write("spc", "multi-doc", "---\nkind: ConfigMap\n---\n" + blog)
    write("spc", "not-yaml", "{[:")

for f in [authority_seeds, spc_seeds, jmespath_seeds, params_seeds, objects_seeds, pkcs12_seeds, chain_seeds, jwk_seeds, pem_seeds, keyvault_seeds, token_seeds, secret_seeds]:
    f()
