"""An independent Session community ("v3" SOGS API) client for the test suite.

It builds requests the way Session desktop does and does all of the client-side
cryptography itself. It never imports the server package: a bug shared by client
and server code would otherwise hide itself. Facts come from
docs/spec/sogs-v3.md sections 2 (authentication, 15-blinding), 3 (onion
requests) and 4 (what desktop sends).

What the desktop does, in short:

* it signs every request with four ``X-SOGS-*`` headers, using a key blinded
  for this server ("15" ids) when the server advertises ``blind``;
* it reaches the server only through onion requests v4 (``/oxen/v4/lsrpc``):
  a bencoded ``[meta json, body]`` list, encrypted with AES-256-GCM to the
  server's X25519 key, answered by an encrypted bencoded ``[meta, body]`` list;
* it decodes the answer by its exact content type.

The "http" transport sends the very same signed request directly, so tests can
compare both paths.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import nacl.bindings as sodium
import xeddsa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.exceptions import CryptoError
from nacl.signing import SigningKey

Transport = Literal["http", "onion"]
EncType = Literal["aes-gcm", "xchacha20"]

ONION_V4_PATH = "/oxen/v4/lsrpc"
ONION_V3_PATH = "/loki/v3/lsrpc"

SESSION_ID_PREFIX = "05"  # X25519 Session id
BLINDED15_PREFIX = "15"  # 15-blinded Ed25519 key
UNBLINDED_PREFIX = "00"  # plain Ed25519 key (servers that do not require blinding)

SOGS_NONCE_SIZE = 16
BODY_HASH_SIZE = 64  # BLAKE2b-512 of the request body
BLINDING_HASH_SIZE = 64  # BLAKE2b-512 of the server key, reduced to a scalar

HMAC_KEY = b"LOKI"  # AES-GCM onion key = HMAC-SHA256(key="LOKI", msg=X25519 shared secret)
AES_GCM_IV_SIZE = 12
AES_GCM_TAG_SIZE = 16
XCHACHA_KEY_SIZE = 32
XCHACHA_NONCE_SIZE = 24

CONTENT_JSON = "application/json"
CONTENT_TEXT = "text/plain; charset=utf-8"
CONTENT_BINARY = "application/octet-stream"

# The server closes a connection idle for 5 s (uvicorn's keep-alive timeout). A client
# that kept it as long could send a request just as it closes ("server disconnected
# without sending a response"), so test clients let idle connections go sooner.
CLIENT_LIMITS = httpx.Limits(keepalive_expiry=2.0)


class WireFormatError(AssertionError):
    """A server answer the desktop would refuse, or a frame that is not well formed.

    An AssertionError, so a test that meets one fails with the reason.
    """


# --------------------------------------------------------------------------- small helpers


def desktop_json(value: object) -> bytes:
    """JSON bytes as JavaScript's JSON.stringify writes them: compact, non-ASCII kept raw."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def blake2b_512(data: bytes) -> bytes:
    """Unkeyed BLAKE2b with a 64-byte digest (libsodium's crypto_generichash(64, data))."""
    return hashlib.blake2b(data, digest_size=64).digest()


def sha512(data: bytes) -> bytes:
    """SHA-512 digest."""
    return hashlib.sha512(data).digest()


# --------------------------------------------------------------------------- identities


def blinding_factor(server_pk: bytes) -> bytes:
    """k = scalar_reduce(BLAKE2b-512(server X25519 key)): the 15-blinding factor."""
    _check_key(server_pk, "server public key")
    return sodium.crypto_core_ed25519_scalar_reduce(blake2b_512(server_pk))


@dataclass(frozen=True)
class BlindedKeyPair:
    """A user's 15-blinded key pair for one server: scalar ka and point kA = ka*G."""

    secret: bytes  # ka, a reduced scalar (no clamping)
    public: bytes  # kA, the key in the "15" id

    @property
    def blinded_id(self) -> str:
        """The "15" + hex(kA) id the server knows the user by."""
        return BLINDED15_PREFIX + self.public.hex()


@dataclass(frozen=True)
class BlindedIdentity:
    """A Session user as current clients hold it: one Ed25519 key pair.

    The Session id ("05...") is the X25519 form of that key; on a server the user
    signs with a key blinded for that server ("15...") or, where the server allows
    it, with the plain Ed25519 key ("00...").
    """

    signing_key: SigningKey

    @classmethod
    def generate(cls) -> BlindedIdentity:
        """A fresh random user, so tests never share state through keys."""
        return cls(SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> BlindedIdentity:
        """The user whose Ed25519 seed (the first half of libsodium's secret key) is given."""
        _check_key(seed, "Ed25519 seed")
        return cls(SigningKey(seed))

    # -- keys

    @property
    def seed(self) -> bytes:
        """The 32-byte Ed25519 seed."""
        return bytes(self.signing_key)

    @property
    def ed25519_public(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return self.signing_key.verify_key.encode()

    @property
    def ed25519_secret(self) -> bytes:
        """libsodium's 64-byte secret key: seed || public key."""
        return self.seed + self.ed25519_public

    @property
    def x25519_private(self) -> bytes:
        """The private scalar a (crypto_sign_ed25519_sk_to_curve25519), also the X25519 key."""
        return sodium.crypto_sign_ed25519_sk_to_curve25519(self.ed25519_secret)

    @property
    def x25519_public(self) -> bytes:
        """The X25519 public key behind the Session id."""
        return sodium.crypto_sign_ed25519_pk_to_curve25519(self.ed25519_public)

    @property
    def session_id(self) -> str:
        """The Session id: "05" + hex X25519 public key."""
        return SESSION_ID_PREFIX + self.x25519_public.hex()

    @property
    def unblinded_id(self) -> str:
        """The "00" + hex Ed25519 key that unblinded requests carry in X-SOGS-Pubkey."""
        return UNBLINDED_PREFIX + self.ed25519_public.hex()

    # -- 15-blinding

    def blinded_keys(self, server_pk: bytes) -> BlindedKeyPair:
        """ka = k*a and kA = ka*G for this server, as desktop's getBlindingValues."""
        ka = sodium.crypto_core_ed25519_scalar_mul(blinding_factor(server_pk), self.x25519_private)
        return BlindedKeyPair(ka, sodium.crypto_scalarmult_ed25519_base_noclamp(ka))

    def blinded_id(self, server_pk: bytes) -> str:
        """The "15..." id this user has on the server with key server_pk."""
        return self.blinded_keys(server_pk).blinded_id

    def poster_id(self, server_pk: bytes, *, blinded: bool = True) -> str:
        """The id the server shows for this user: "15..." blinded, else the "05..." Session id."""
        return self.blinded_id(server_pk) if blinded else self.session_id

    def sign_blinded(self, server_pk: bytes, message: bytes) -> bytes:
        """An Ed25519 signature under kA, made the way libsession's blind15_sign makes it.

        r is derived from the second half of SHA-512(seed) (the usual Ed25519 nonce key),
        so signatures are deterministic; any Ed25519 verifier accepts them under kA.
        """
        keys = self.blinded_keys(server_pk)
        nonce_key = sha512(self.seed)[32:]
        r = sodium.crypto_core_ed25519_scalar_reduce(sha512(nonce_key + keys.public + message))
        big_r = sodium.crypto_scalarmult_ed25519_base_noclamp(r)
        challenge = sodium.crypto_core_ed25519_scalar_reduce(sha512(big_r + keys.public + message))
        s = sodium.crypto_core_ed25519_scalar_add(
            r, sodium.crypto_core_ed25519_scalar_mul(challenge, keys.secret)
        )
        return big_r + s

    def sign_unblinded(self, message: bytes) -> bytes:
        """A plain Ed25519 signature with the user's own key (the "00" mode)."""
        return self.signing_key.sign(message).signature

    def sign_xeddsa(self, message: bytes) -> bytes:
        """XEd25519 signature with the X25519 key, as clients sign "05" posts.

        Verifiers convert the X25519 key to Ed25519 with the sign bit clear, so the
        private key is forced to match.
        """
        priv = xeddsa.priv_force_sign(self.x25519_private, False)
        return bytes(xeddsa.ed25519_priv_sign(priv, message))

    # -- what requests carry

    def auth_pubkey(self, server_pk: bytes, *, blinded: bool = True) -> str:
        """The X-SOGS-Pubkey value: "15" + kA, or "00" + Ed25519 key."""
        return self.blinded_id(server_pk) if blinded else self.unblinded_id

    def sign_auth(self, server_pk: bytes, message: bytes, *, blinded: bool = True) -> bytes:
        """Sign a request as desktop's getSogsSignature: blinded, or plain Ed25519."""
        return self.sign_blinded(server_pk, message) if blinded else self.sign_unblinded(message)

    def sign_message_data(self, data: bytes, server_pk: bytes, *, blinded: bool = True) -> bytes:
        """The `signature` of a posted message's `data`.

        A blinded ("15") poster signs with the blinded key (desktop's signWithBlinding);
        an unblinded ("05") poster signs with XEd25519.
        """
        return self.sign_blinded(server_pk, data) if blinded else self.sign_xeddsa(data)


def _check_key(key: bytes, what: str) -> None:
    """Refuse a key that is not 32 raw bytes (a hex string here is a test bug)."""
    if not isinstance(key, bytes) or len(key) != 32:
        raise ValueError(f"{what} must be 32 raw bytes")


# --------------------------------------------------------------------------- X-SOGS headers


def signed_path(path_with_query: str) -> str:
    """The PATH part of the signed message: URL-decoded path, then "?" + raw query if any.

    Desktop decodes the path of emoji (reaction) endpoints before signing; the
    server always compares against the decoded path.
    """
    path, _, query = path_with_query.partition("?")
    decoded = urllib.parse.unquote(path, errors="strict")
    return f"{decoded}?{query}" if query else decoded


def sogs_signature_message(
    server_pk: bytes, nonce: bytes, timestamp: str, method: str, path_with_query: str, body: bytes
) -> bytes:
    """SERVER_PK || NONCE || TIMESTAMP || METHOD || PATH || BLAKE2b-512(body) (if body)."""
    message = (
        server_pk
        + nonce
        + timestamp.encode("ascii")
        + method.encode("ascii")
        + signed_path(path_with_query).encode()
    )
    if body:
        message += hashlib.blake2b(body, digest_size=BODY_HASH_SIZE).digest()
    return message


def sogs_headers(
    identity: BlindedIdentity,
    server_pk: bytes,
    method: str,
    path_with_query: str,
    body: bytes,
    *,
    blinded: bool = True,
    nonce: bytes | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    """The four X-SOGS-* headers desktop's getOpenGroupHeaders returns.

    nonce defaults to 16 fresh random bytes and timestamp to now (unix seconds).
    """
    _check_key(server_pk, "server public key")
    if nonce is None:
        nonce = os.urandom(SOGS_NONCE_SIZE)
    if timestamp is None:
        timestamp = int(time.time())
    ts = str(timestamp)
    message = sogs_signature_message(server_pk, nonce, ts, method.upper(), path_with_query, body)
    signature = identity.sign_auth(server_pk, message, blinded=blinded)
    return {
        "X-SOGS-Pubkey": identity.auth_pubkey(server_pk, blinded=blinded),
        "X-SOGS-Timestamp": ts,
        "X-SOGS-Nonce": base64.b64encode(nonce).decode(),
        "X-SOGS-Signature": base64.b64encode(signature).decode(),
    }


# --------------------------------------------------------------------------- bencode framing


def bencode_strings(parts: Sequence[bytes]) -> bytes:
    """A bencoded list of byte strings: l<len>:<bytes>...e."""
    out = [b"l"]
    for part in parts:
        out += [str(len(part)).encode(), b":", part]
    out.append(b"e")
    return b"".join(out)


def bdecode_strings(data: bytes) -> list[bytes]:
    """Parse a bencoded list of byte strings, strictly: nothing before or after it."""
    if not data.startswith(b"l"):
        raise WireFormatError(f"not a bencoded list: {data[:40]!r}")
    parts: list[bytes] = []
    pos = 1
    while pos < len(data) and data[pos : pos + 1] != b"e":
        part, pos = _bdecode_string(data, pos)
        parts.append(part)
    if pos >= len(data):
        raise WireFormatError("bencoded list has no closing 'e'")
    if pos + 1 != len(data):
        raise WireFormatError(f"{len(data) - pos - 1} bytes after the bencoded list")
    return parts


def _bdecode_string(data: bytes, pos: int) -> tuple[bytes, int]:
    """One <len>:<bytes> string at pos; returns it and the position after it."""
    colon = data.find(b":", pos)
    digits = data[pos:colon] if colon != -1 else b""
    if not digits.isdigit() or (len(digits) > 1 and digits.startswith(b"0")):
        raise WireFormatError(f"bad bencode string length at byte {pos}: {data[pos : pos + 20]!r}")
    start = colon + 1
    end = start + int(digits)
    if end > len(data):
        raise WireFormatError(f"bencode string at byte {pos} runs past the end")
    return data[start:end], end


# --------------------------------------------------------------------------- onion v4 frames


def encode_v4_request(
    method: str, endpoint: str, headers: Mapping[str, str], body: bytes = b""
) -> bytes:
    """The v4 request plaintext, as desktop's encodeV4Request.

    l<len>:{"method","endpoint","headers"}[<len>:<body>]e; the body string is left
    out when the body is empty.
    """
    meta = desktop_json({"method": method, "endpoint": endpoint, "headers": dict(headers)})
    return bencode_strings([meta, body] if body else [meta])


@dataclass(frozen=True)
class CommunityAnswer:
    """One answer of the server, whichever transport carried it.

    headers have lower-case names; body is decoded by content_type (JSON value,
    str, or bytes); raw_body keeps the bytes as received.
    """

    status: int
    headers: dict[str, str]
    body: Any
    content_type: str
    raw_body: bytes = field(default=b"", repr=False)


def decode_body(content_type: str | None, raw: bytes) -> Any:
    """Decode a body by its exact content type, as desktop's decodeV4Response.

    application/json -> JSON value, text/plain; charset=utf-8 -> str,
    application/octet-stream -> bytes. An empty body without a content type
    (an empty 304, say) gives None. Anything else is an error.
    """
    if content_type is None and not raw:
        return None
    if content_type == CONTENT_JSON:
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise WireFormatError(f"{CONTENT_JSON} body is not JSON: {raw[:200]!r}") from exc
    if content_type == CONTENT_TEXT:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WireFormatError(f"{CONTENT_TEXT} body is not UTF-8: {raw[:200]!r}") from exc
    if content_type == CONTENT_BINARY:
        return raw
    raise WireFormatError(f"content type desktop does not decode: {content_type!r}")


def parse_v4_reply(plaintext: bytes) -> CommunityAnswer:
    """Parse a decrypted v4 reply: exactly l<n>:{"code","headers"}<n>:<body>e."""
    parts = bdecode_strings(plaintext)
    if len(parts) != 2:
        raise WireFormatError(f"v4 reply has {len(parts)} strings, not 2 (meta, body)")
    meta_bytes, raw = parts
    try:
        meta = json.loads(meta_bytes)
    except ValueError as exc:
        raise WireFormatError(f"v4 reply meta is not JSON: {meta_bytes[:200]!r}") from exc
    if not isinstance(meta, dict):
        raise WireFormatError(f"v4 reply meta is not an object: {meta!r}")
    code, headers = meta.get("code"), meta.get("headers")
    if not isinstance(code, int) or isinstance(code, bool):
        raise WireFormatError(f"v4 reply meta has no integer code: {meta!r}")
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and k == k.lower() and isinstance(v, str) for k, v in headers.items()
    ):
        raise WireFormatError(f"v4 reply headers are not lower-case strings: {meta!r}")
    content_type = headers.get("content-type")
    return CommunityAnswer(code, headers, decode_body(content_type, raw), content_type or "", raw)


# --------------------------------------------------------------------------- onion encryption


@dataclass(frozen=True)
class OnionKey:
    """The symmetric key of one onion exchange: the reply comes back under it too."""

    enc_type: EncType
    key: bytes


def aes_gcm_key(shared_secret: bytes) -> bytes:
    """HMAC-SHA256(key="LOKI", msg=shared secret): desktop's deriveSymmetricKey."""
    return hmac.new(HMAC_KEY, shared_secret, hashlib.sha256).digest()


def xchacha_key(shared_secret: bytes, client_public: bytes, server_public: bytes) -> bytes:
    """BLAKE2b-256(shared || client ephemeral key || server key), as libsession's client."""
    digest = hashlib.blake2b(digest_size=XCHACHA_KEY_SIZE)
    for part in (shared_secret, client_public, server_public):
        digest.update(part)
    return digest.digest()


def onion_key_for(enc_type: EncType, ephemeral: X25519PrivateKey, server_pk: bytes) -> OnionKey:
    """The key the client and the server both derive from the ephemeral key pair."""
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(server_pk))
    if enc_type == "aes-gcm":
        return OnionKey(enc_type, aes_gcm_key(shared))
    if enc_type == "xchacha20":
        client_public = ephemeral.public_key().public_bytes_raw()
        return OnionKey(enc_type, xchacha_key(shared, client_public, server_pk))
    raise ValueError(f"unknown enc_type {enc_type!r}")


def onion_encrypt(key: OnionKey, plaintext: bytes) -> bytes:
    """AES-GCM: iv12 || ct || tag16. XChaCha20-Poly1305: nonce24 || ct (tag included)."""
    if key.enc_type == "aes-gcm":
        iv = os.urandom(AES_GCM_IV_SIZE)
        return iv + AESGCM(key.key).encrypt(iv, plaintext, None)
    nonce = os.urandom(XCHACHA_NONCE_SIZE)
    return nonce + sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        plaintext, None, nonce, key.key
    )


def onion_decrypt(key: OnionKey, data: bytes) -> bytes:
    """Inverse of onion_encrypt; a WireFormatError when the data does not open."""
    try:
        if key.enc_type == "aes-gcm":
            if len(data) < AES_GCM_IV_SIZE + AES_GCM_TAG_SIZE:
                raise WireFormatError(f"AES-GCM data too short ({len(data)} bytes)")
            iv, ciphertext = data[:AES_GCM_IV_SIZE], data[AES_GCM_IV_SIZE:]
            return AESGCM(key.key).decrypt(iv, ciphertext, None)
        nonce, ciphertext = data[:XCHACHA_NONCE_SIZE], data[XCHACHA_NONCE_SIZE:]
        return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, None, nonce, key.key)
    except (InvalidTag, CryptoError, ValueError) as exc:
        raise WireFormatError(f"{key.enc_type} data does not decrypt: {exc!r}") from exc


def relay_metadata(base_url: str, target: str) -> dict[str, object]:
    """The fields the client puts in for the last snode, as desktop does.

    https: only host (the snode then uses https on 443); http: protocol and port too.
    """
    url = httpx.URL(base_url)
    meta: dict[str, object] = {"host": url.host, "target": target, "method": "POST"}
    if url.scheme == "http":
        meta["protocol"] = "http"
        meta["port"] = url.port or 80
    return meta


def build_onion_envelope(
    server_pk: bytes,
    plaintext: bytes,
    *,
    enc_type: EncType = "aes-gcm",
    relay: Mapping[str, object] | None = None,
    send_enc_type: bool = True,
) -> tuple[bytes, OnionKey]:
    """What the last snode POSTs to the server: u32le(len) || ciphertext || JSON.

    The JSON holds ephemeral_key (hex), enc_type, and the relay fields (host,
    target, ...) the snode leaves in. send_enc_type=False leaves enc_type out, as
    desktop does for AES-GCM. Returns the bytes and the key the reply comes under.
    """
    _check_key(server_pk, "server public key")
    ephemeral = X25519PrivateKey.generate()
    key = onion_key_for(enc_type, ephemeral, server_pk)
    ciphertext = onion_encrypt(key, plaintext)
    metadata: dict[str, object] = {"ephemeral_key": ephemeral.public_key().public_bytes_raw().hex()}
    if send_enc_type:
        metadata["enc_type"] = enc_type
    metadata.update(relay or {})
    envelope = struct.pack("<I", len(ciphertext)) + ciphertext + desktop_json(metadata)
    return envelope, key


# --------------------------------------------------------------------------- client


@dataclass(frozen=True)
class OnionV3Reply:
    """The answer of a v3 onion request: the outer HTTP status and the decrypted body.

    For a 2xx the plaintext is the endpoint's body; otherwise {"status_code": N}
    (the server drops headers and error bodies in v3).
    """

    http_status: int
    plaintext: bytes

    def json(self) -> Any:
        """The plaintext parsed as JSON."""
        return json.loads(self.plaintext)


class CommunityClient:
    """A client of one community server, speaking direct HTTP or onion v4.

    Methods build and send requests and return what came back; they assert
    nothing about the API, only about the wire format (WireFormatError).
    """

    def __init__(
        self,
        base_url: str,
        server_x25519_pk: bytes,
        transport: Transport,
        *,
        enc_type: EncType = "aes-gcm",
        http_client: httpx.Client | None = None,
        timeout: float = 15.0,
    ) -> None:
        """transport: "onion" (what desktop does) or "http" (the same request, direct)."""
        _check_key(server_x25519_pk, "server public key")
        if transport not in ("http", "onion"):
            raise ValueError(f"unknown transport {transport!r}")
        self.base_url = base_url.rstrip("/")
        self.server_pk = server_x25519_pk
        self.transport: Transport = transport
        self.enc_type: EncType = enc_type
        # trust_env=False: a proxy from the environment must not sit in front of loopback.
        self.http = http_client or httpx.Client(
            base_url=self.base_url, timeout=timeout, trust_env=False, limits=CLIENT_LIMITS
        )

    def close(self) -> None:
        """Release the connection pool."""
        self.http.close()

    def __enter__(self) -> CommunityClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests

    def request(
        self,
        method: str,
        path: str,
        *,
        identity: BlindedIdentity | None = None,
        json: object = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        blinded: bool = True,
        transport: Transport | None = None,
    ) -> CommunityAnswer:
        """Send one request: path starts with "/" and may carry "?query" and raw UTF-8.

        json is sent as desktop's JSON.stringify output with Content-Type
        application/json (sent even without a body, as desktop does); body bytes go
        as application/octet-stream. With an identity the request is signed. headers
        are added last, so a test can override anything.
        """
        if json is not None and body is not None:
            raise ValueError("give json or body, not both")
        if not path.startswith("/"):
            raise ValueError(f"path needs a leading '/': {path!r}")
        method = method.upper()
        content = body if body is not None else (desktop_json(json) if json is not None else b"")
        all_headers: dict[str, str] = {}
        if identity is not None:
            all_headers.update(
                sogs_headers(identity, self.server_pk, method, path, content, blinded=blinded)
            )
        all_headers["Content-Type"] = CONTENT_BINARY if body is not None else CONTENT_JSON
        all_headers.update(headers or {})
        mode = transport or self.transport
        if mode == "http":
            return self._send_http(method, path, all_headers, content)
        if mode == "onion":
            return self._send_onion_v4(method, path, all_headers, content)
        raise ValueError(f"unknown transport {mode!r}")

    def _send_http(
        self, method: str, path: str, headers: dict[str, str], content: bytes
    ) -> CommunityAnswer:
        """The request sent directly; the answer decoded like an onion reply."""
        resp = self.http.request(method, path, headers=headers, content=content or None)
        lower = {k.lower(): v for k, v in resp.headers.items()}
        content_type = lower.get("content-type")
        raw = resp.content
        return CommunityAnswer(
            resp.status_code, lower, decode_body(content_type, raw), content_type or "", raw
        )

    def _send_onion_v4(
        self, method: str, path: str, headers: dict[str, str], content: bytes
    ) -> CommunityAnswer:
        """Through /oxen/v4/lsrpc: outer HTTP 200 with the encrypted bencoded reply."""
        plaintext = encode_v4_request(method, path, headers, content)
        envelope, key = build_onion_envelope(
            self.server_pk,
            plaintext,
            enc_type=self.enc_type,
            relay=relay_metadata(self.base_url, ONION_V4_PATH),
        )
        resp = self.raw_onion(envelope)
        if resp.status_code != 200:
            raise WireFormatError(
                f"onion v4 {method} {path}: outer HTTP {resp.status_code}: {resp.content[:300]!r}"
            )
        return parse_v4_reply(onion_decrypt(key, resp.content))

    def raw_onion(self, envelope: bytes, *, target: str = ONION_V4_PATH) -> httpx.Response:
        """POST an envelope as the last snode does, without checks (malformed-input tests)."""
        return self.http.post(target, content=envelope, headers={"Content-Type": CONTENT_BINARY})

    def onion_v3(
        self,
        method: str,
        path: str,
        *,
        identity: BlindedIdentity | None = None,
        json: object = None,
        headers: Mapping[str, str] | None = None,
        blinded: bool = True,
    ) -> OnionV3Reply:
        """A v3-API request through the old /loki/v3/lsrpc (endpoint with a leading "/").

        The plaintext is JSON {"endpoint","method","body"(string, only with json),
        "headers"}; the reply is base64 of the encrypted body. An outer status other
        than 200 comes back as is, with the raw response bytes as plaintext.
        """
        method = method.upper()
        content = desktop_json(json) if json is not None else b""
        all_headers: dict[str, str] = {}
        if identity is not None:
            all_headers.update(
                sogs_headers(identity, self.server_pk, method, path, content, blinded=blinded)
            )
        all_headers["Content-Type"] = CONTENT_JSON
        all_headers.update(headers or {})
        inner: dict[str, object] = {"endpoint": path, "method": method}
        if content:
            inner["body"] = content.decode()
        inner["headers"] = all_headers
        envelope, key = build_onion_envelope(
            self.server_pk,
            desktop_json(inner),
            enc_type=self.enc_type,
            relay=relay_metadata(self.base_url, ONION_V3_PATH),
        )
        resp = self.raw_onion(envelope, target=ONION_V3_PATH)
        if resp.status_code != 200:
            return OnionV3Reply(resp.status_code, resp.content)
        try:
            encrypted = base64.b64decode(resp.content, validate=True)
        except ValueError as exc:
            raise WireFormatError(f"v3 reply is not base64: {resp.content[:200]!r}") from exc
        return OnionV3Reply(resp.status_code, onion_decrypt(key, encrypted))

    # -- conveniences: they only build requests

    def get(
        self,
        path: str,
        *,
        identity: BlindedIdentity | None = None,
        headers: Mapping[str, str] | None = None,
        blinded: bool = True,
    ) -> CommunityAnswer:
        """GET path."""
        return self.request("GET", path, identity=identity, headers=headers, blinded=blinded)

    def post(
        self,
        path: str,
        json: object = None,
        *,
        body: bytes | None = None,
        identity: BlindedIdentity | None = None,
        headers: Mapping[str, str] | None = None,
        blinded: bool = True,
    ) -> CommunityAnswer:
        """POST path with a JSON value or raw bytes."""
        return self.request(
            "POST", path, identity=identity, json=json, body=body, headers=headers, blinded=blinded
        )

    def put(
        self,
        path: str,
        json: object = None,
        *,
        body: bytes | None = None,
        identity: BlindedIdentity | None = None,
        headers: Mapping[str, str] | None = None,
        blinded: bool = True,
    ) -> CommunityAnswer:
        """PUT path (desktop's reactions send no body)."""
        return self.request(
            "PUT", path, identity=identity, json=json, body=body, headers=headers, blinded=blinded
        )

    def delete(
        self,
        path: str,
        *,
        identity: BlindedIdentity | None = None,
        headers: Mapping[str, str] | None = None,
        blinded: bool = True,
    ) -> CommunityAnswer:
        """DELETE path."""
        return self.request("DELETE", path, identity=identity, headers=headers, blinded=blinded)

    def batch(
        self,
        items: Sequence[Mapping[str, object]],
        identity: BlindedIdentity | None = None,
        *,
        blinded: bool = True,
    ) -> CommunityAnswer:
        """POST /batch: items like {"method": "GET", "path": "/capabilities"} (+ "json")."""
        return self.post("/batch", [dict(i) for i in items], identity=identity, blinded=blinded)

    def sequence(
        self,
        items: Sequence[Mapping[str, object]],
        identity: BlindedIdentity | None = None,
        *,
        blinded: bool = True,
    ) -> CommunityAnswer:
        """POST /sequence: like batch, but the server stops at the first failure."""
        return self.post("/sequence", [dict(i) for i in items], identity=identity, blinded=blinded)
