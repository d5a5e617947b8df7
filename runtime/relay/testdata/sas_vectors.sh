#!/bin/sh
# Regenerates sas_vectors.txt independently of the Go implementation:
# python3 URL-encodes (quote_plus, keeping -_.!*() like .NET's
# WebUtility.UrlEncode) and openssl computes the HMAC-SHA256 with the UTF-8
# bytes of the key string as the HMAC key.
#   sh testdata/sas_vectors.sh > testdata/sas_vectors.txt
set -eu
vector() { # resource keyName key expiry
  sr=$(python3 -c 'import sys,urllib.parse;print(urllib.parse.quote_plus(sys.argv[1],safe="-_.!*()"))' "$1")
  sig=$(printf '%s\n%s' "$sr" "$4" | openssl dgst -sha256 -hmac "$3" -binary | base64)
  sigenc=$(python3 -c 'import sys,urllib.parse;print(urllib.parse.quote_plus(sys.argv[1],safe="-_.!*()"))' "$sig")
  skn=$(python3 -c 'import sys,urllib.parse;print(urllib.parse.quote_plus(sys.argv[1],safe="-_.!*()"))' "$2")
  printf '%s\t%s\t%s\t%s\tSharedAccessSignature sr=%s&sig=%s&se=%s&skn=%s\n' "$1" "$2" "$3" "$4" "$sr" "$sigenc" "$4" "$skn"
}
echo "# resource	keyName	key	expiry	token"
vector 'http://myns.servicebus.windows.net/opsbot/' 'RootManageSharedAccessKey' 'n3Vq+Jk7Qm0aZr8cT1pX4eLw9sYbG2hF6dK5uN0oPiE=' 1767225600
vector 'http://contoso.servicebus.usgovcloudapi.net/ops/relay/' 'listen' 'c2VjcmV0LWtleS1mb3ItZ292' 1893456000
vector 'http://fabrikam.servicebus.chinacloudapi.cn/hc/' 'send rule' 'a/b+c==' 4102444800
vector 'http://127.0.0.1/hc/' 'listen-1234' 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' 2000000000
