"""Cards and passes: card numbers, the card model, Apple .pkpass build and signing, certificates and the dev PKI."""
