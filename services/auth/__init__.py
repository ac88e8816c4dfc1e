"""The auth service: accounts, OTP login, EdDSA access tokens, rotating
refresh tokens, profiles and the JWK set the gateway verifies tokens with.

Run it with ``python -m services.auth``; create an admin with
``python -m services.auth create-admin --wallet 0x… --email …``.
"""
