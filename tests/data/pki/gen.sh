#!/usr/bin/env bash
# Regenerates the PKI fixtures of the object-parity tests (render unit tests
# and tests/objects.rs). Needs the openssl command line (3.x, with the legacy
# provider for RC2) and python3 (standard library only). The outputs are
# committed; tests never run this script.
#
# Every expected output is made here by OpenSSL from the source keys and
# certificates, never by akv-csi-provider, so the golden tests compare our
# conversion against an independent implementation:
#   <chain>/key.pem           the leaf key as PKCS#8 (`openssl pkey`)
#   <chain>/{leaf,int,root}.pem  the certificates (`openssl x509`)
#   jwk/<name>.json + .pub.pem  a JWK and `openssl pkey -pubout` of its key
#
# Chains: rsa (RSA 2048, AKI/SKI), ec (P-384 root and intermediate, P-256
# leaf, AKI/SKI), noaki (RSA, no AKI/SKI anywhere), p521 (one self-signed
# P-521 certificate). PFX files put the leaf first and then the root before
# the intermediate, so ordering the chain has something to do:
#   <chain>-legacy.pfx  certs RC2-40, key 3DES, SHA-1 MAC (`-legacy`)
#   <chain>-3des.pfx    certs and key 3DES, SHA-1 MAC
#   <chain>-aes.pfx     OpenSSL 3 default: PBES2/AES-256-CBC, SHA-256 MAC
#   rsa-kv.pfx          Key Vault / .NET style: RC2-40 certs, 3DES key, SHA-1
#                       MAC, all keyed with the zero-length ("null") password
#                       rather than the two-zero-byte empty password
#   partial-aes.pfx     rsa leaf + root only (intermediate missing)
# All PFX passwords are empty.
set -euo pipefail
cd "$(dirname "$0")"
rm -rf rsa ec noaki p521 jwk orders ./*.pfx
mkdir -p rsa ec noaki p521 jwk
DAYS=36500
export OPENSSL_CONF=/dev/null

ext() { # name body... -> extension file
  local f=$1; shift
  printf '%s\n' "$@" >"$f"
}

# chain DIR ROOT_ALG INT_ALG LEAF_ALG WITH_KEY_IDS
chain() {
  local d=$1 ra=$2 ia=$3 la=$4 ids=$5
  local ski=hash aki=keyid:always
  if [ "$ids" = no ]; then ski=none; aki=none; fi
  ext "$d/ca.ext" "basicConstraints=critical,CA:TRUE" "keyUsage=critical,keyCertSign,cRLSign" \
    "subjectKeyIdentifier=$ski" "authorityKeyIdentifier=$aki"
  ext "$d/leaf.ext" "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" "subjectAltName=DNS:$d.example.test" \
    "subjectKeyIdentifier=$ski" "authorityKeyIdentifier=$aki"
  openssl genpkey $ra -out "$d/root.key" 2>/dev/null
  openssl genpkey $ia -out "$d/int.key" 2>/dev/null
  openssl genpkey $la -out "$d/leaf.key.orig" 2>/dev/null
  openssl req -new -key "$d/root.key" -subj "/O=akv-csi-provider tests/CN=$d root" -out "$d/root.csr"
  openssl x509 -req -in "$d/root.csr" -key "$d/root.key" -days $DAYS -sha256 \
    -extfile "$d/ca.ext" -set_serial 1 -out "$d/root.pem" 2>/dev/null
  openssl req -new -key "$d/int.key" -subj "/O=akv-csi-provider tests/CN=$d intermediate" -out "$d/int.csr"
  openssl x509 -req -in "$d/int.csr" -CA "$d/root.pem" -CAkey "$d/root.key" -days $DAYS -sha256 \
    -extfile "$d/ca.ext" -set_serial 2 -out "$d/int.pem" 2>/dev/null
  openssl req -new -key "$d/leaf.key.orig" -subj "/O=akv-csi-provider tests/CN=$d.example.test" -out "$d/leaf.csr"
  openssl x509 -req -in "$d/leaf.csr" -CA "$d/int.pem" -CAkey "$d/int.key" -days $DAYS -sha384 \
    -extfile "$d/leaf.ext" -set_serial 3 -out "$d/leaf.pem" 2>/dev/null
  openssl pkey -in "$d/leaf.key.orig" -out "$d/key.pem"
  openssl verify -CAfile "$d/root.pem" -untrusted "$d/int.pem" "$d/leaf.pem" >/dev/null
  cat "$d/root.pem" "$d/int.pem" >"$d/scrambled-cas.pem"
  rm -f "$d"/*.csr "$d"/*.ext "$d/root.key" "$d/int.key" "$d/leaf.key.orig"
}

chain rsa "-algorithm RSA -pkeyopt rsa_keygen_bits:2048" "-algorithm RSA -pkeyopt rsa_keygen_bits:2048" \
  "-algorithm RSA -pkeyopt rsa_keygen_bits:2048" yes
chain ec "-algorithm EC -pkeyopt ec_paramgen_curve:P-384" "-algorithm EC -pkeyopt ec_paramgen_curve:P-384" \
  "-algorithm EC -pkeyopt ec_paramgen_curve:P-256" yes
chain noaki "-algorithm RSA -pkeyopt rsa_keygen_bits:2048" "-algorithm EC -pkeyopt ec_paramgen_curve:P-256" \
  "-algorithm RSA -pkeyopt rsa_keygen_bits:2048" no
for d in rsa ec; do
  openssl x509 -in $d/leaf.pem -noout -ext authorityKeyIdentifier | grep -q "Authority Key Identifier" || { echo "$d: no AKI" >&2; exit 1; }
done
if openssl x509 -in noaki/leaf.pem -noout -text | grep -q "Key Identifier"; then
  echo "noaki: unexpected key identifiers" >&2; exit 1
fi

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -out p521/key.orig 2>/dev/null
openssl req -new -x509 -key p521/key.orig -subj "/CN=p521.example.test" -days $DAYS -sha512 -set_serial 9 \
  -out p521/leaf.pem
openssl pkey -in p521/key.orig -out p521/key.pem
rm p521/key.orig

pfx() { # out key cert cas extra-args...
  local out=$1 key=$2 cert=$3 cas=$4; shift 4
  local certfile=()
  [ -n "$cas" ] && certfile=(-certfile "$cas")
  openssl pkcs12 -export -inkey "$key" -in "$cert" "${certfile[@]}" -passout pass: -out "$out" "$@"
}
for d in rsa ec noaki; do
  pfx "$d-legacy.pfx" $d/key.pem $d/leaf.pem $d/scrambled-cas.pem -legacy
  pfx "$d-3des.pfx" $d/key.pem $d/leaf.pem $d/scrambled-cas.pem -certpbe PBE-SHA1-3DES -keypbe PBE-SHA1-3DES -macalg sha1
  pfx "$d-aes.pfx" $d/key.pem $d/leaf.pem $d/scrambled-cas.pem
done
pfx p521-aes.pfx p521/key.pem p521/leaf.pem ""
pfx partial-aes.pfx rsa/key.pem rsa/leaf.pem rsa/root.pem

# Check the bag order OpenSSL wrote: leaf, root, intermediate.
for f in rsa-aes.pfx ec-legacy.pfx; do
  subjects=$(openssl pkcs12 -in "$f" -passin pass: -nokeys -legacy 2>/dev/null | grep '^subject=' | tr '\n' '|')
  case "$subjects" in
    *example.test*root*intermediate*) ;;
    *) echo "$f: unexpected bag order: $subjects" >&2; exit 1 ;;
  esac
done

python3 kv_style_pfx.py rsa/key.pem rsa/leaf.pem rsa/root.pem rsa/int.pem >rsa-kv.pfx
# OpenSSL reads it (it tries the zero-length password first).
kv_pem=$(openssl pkcs12 -in rsa-kv.pfx -passin pass: -nodes -legacy 2>/dev/null)
case "$kv_pem" in *"BEGIN PRIVATE KEY"*) ;; *) echo "rsa-kv.pfx: unreadable" >&2; exit 1 ;; esac

# Key Vault-style PFX files with the chain in every order (the differential
# test, tests/differential.rs): orders/<chain>-<first>-<second>-<third>.pfx.
mkdir -p orders
for c in rsa ec noaki; do
  for order in "leaf int root" "leaf root int" "int leaf root" "int root leaf" "root leaf int" "root int leaf"; do
    read -r a b z <<<"$order"
    python3 kv_style_pfx.py "$c/key.pem" "$c/$a.pem" "$c/$b.pem" "$c/$z.pem" >"orders/$c-$a-$b-$z.pfx"
  done
done

# JWKs of standalone keys and their SubjectPublicKeyInfo PEM.
jwk() { # name genpkey-args...
  local name=$1; shift
  openssl genpkey "$@" -out jwk/$name.key 2>/dev/null
  openssl pkey -in jwk/$name.key -pubout -out jwk/$name.pub.pem
  openssl pkey -in jwk/$name.key -pubout -outform DER -out jwk/$name.pub.der
  python3 jwk.py jwk/$name.key jwk/$name.pub.der >jwk/$name.json
  rm jwk/$name.key jwk/$name.pub.der
}
jwk rsa2048 -algorithm RSA -pkeyopt rsa_keygen_bits:2048
jwk rsa3072-e3 -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -pkeyopt rsa_keygen_pubexp:3
jwk ec-p256 -algorithm EC -pkeyopt ec_paramgen_curve:P-256
jwk ec-p384 -algorithm EC -pkeyopt ec_paramgen_curve:P-384
jwk ec-p521 -algorithm EC -pkeyopt ec_paramgen_curve:P-521
echo "fixtures regenerated in $(pwd)"
