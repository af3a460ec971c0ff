"""Apple Wallet: pass.json, the .pkpass bundle and its cache, PKCS#7 signing, certificates,
the dev PKI, pass.strings localization and a validator of Apple's rules."""
