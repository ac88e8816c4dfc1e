"""The auth service: accounts, OTP login, EdDSA access tokens, rotating
refresh tokens, profiles, wallet proofs (Sign-In with Ethereum) and the JWK
set the gateway verifies tokens with.

Run it with ``python -m services.auth``; promote an admin (an account whose
wallet is verified) with ``python -m services.auth create-admin --email …``.
"""
