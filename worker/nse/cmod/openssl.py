"""``openssl``: digests, HMAC, symmetric ciphers, random bytes and big numbers.

Big numbers cross the boundary as (magnitude bytes, big-endian; negative flag); the Lua
side keeps them in BIGNUM objects. Messages are the ones Nmap's module gives (observed).
"""
from __future__ import annotations

import hashlib
import hmac as hmac_module
import os
import random
import struct

from worker.nse.api.base import ScriptError, lua_api
from worker.nse.runtime import text

# -- big numbers -------------------------------------------------------------------------------

def _int(mag: bytes, neg) -> int:
    value = int.from_bytes(mag, "big")
    return -value if neg else value


def _bn(value: int) -> tuple[bytes, bool]:
    magnitude = abs(value)
    return magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "big"), value < 0


def _parse_prefix(digits: str, base: int, allowed: str) -> int:
    """As OpenSSL's BN_dec2bn/BN_hex2bn: an optional '-', then the longest run of digits."""
    negative = digits.startswith("-")
    body = digits[1:] if negative else digits
    length = 0
    while length < len(body) and body[length] in allowed:
        length += 1
    value = int(body[:length], base) if length else 0
    return -value if negative else value


def _hex(value: int) -> str:
    magnitude = abs(value)
    digits = f"{magnitude:X}" if magnitude else "0"
    if magnitude and len(digits) % 2:
        digits = "0" + digits  # whole bytes, as BN_bn2hex
    return ("-" if value < 0 else "") + digits


_SMALL_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47)


def is_probable_prime(n: int, rounds: int = 40) -> bool:
    if n < 2:
        return False
    for p in _SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    rng = random.SystemRandom()
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 1), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _truncated_divmod(a: int, b: int) -> tuple[int, int]:
    """C-style division (toward zero), as BN_div."""
    if b == 0:
        return 0, 0  # OpenSSL fails; Nmap's module then returns two zeros (observed)
    q = abs(a) // abs(b)
    if (a < 0) != (b < 0):
        q = -q
    return q, a - q * b


# -- digests -----------------------------------------------------------------------------------

def _md4(data: bytes) -> bytes:
    """MD4 (RFC 1320): OpenSSL 3 no longer offers it by default, NTLM still needs it."""
    def f(x, y, z): return (x & y) | (~x & z)
    def g(x, y, z): return (x & y) | (x & z) | (y & z)
    def h(x, y, z): return x ^ y ^ z
    def rotl(v, s): return ((v << s) | (v >> (32 - s))) & 0xFFFFFFFF
    message = data + b"\x80" + b"\0" * ((55 - len(data)) % 64) + struct.pack("<Q", len(data) * 8)
    a, b, c, d = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
    for offset in range(0, len(message), 64):
        x = struct.unpack("<16I", message[offset:offset + 64])
        aa, bb, cc, dd = a, b, c, d
        for i in range(16):
            k, s = i, (3, 7, 11, 19)[i % 4]
            if i % 4 == 0: a = rotl((a + f(b, c, d) + x[k]) & 0xFFFFFFFF, s)
            elif i % 4 == 1: d = rotl((d + f(a, b, c) + x[k]) & 0xFFFFFFFF, s)
            elif i % 4 == 2: c = rotl((c + f(d, a, b) + x[k]) & 0xFFFFFFFF, s)
            else: b = rotl((b + f(c, d, a) + x[k]) & 0xFFFFFFFF, s)
        for i in range(16):
            k, s = (i % 4) * 4 + i // 4, (3, 5, 9, 13)[i % 4]
            t = 0x5A827999
            if i % 4 == 0: a = rotl((a + g(b, c, d) + x[k] + t) & 0xFFFFFFFF, s)
            elif i % 4 == 1: d = rotl((d + g(a, b, c) + x[k] + t) & 0xFFFFFFFF, s)
            elif i % 4 == 2: c = rotl((c + g(d, a, b) + x[k] + t) & 0xFFFFFFFF, s)
            else: b = rotl((b + g(c, d, a) + x[k] + t) & 0xFFFFFFFF, s)
        for i in range(16):
            k, s = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)[i], (3, 9, 11, 15)[i % 4]
            t = 0x6ED9EBA1
            if i % 4 == 0: a = rotl((a + h(b, c, d) + x[k] + t) & 0xFFFFFFFF, s)
            elif i % 4 == 1: d = rotl((d + h(a, b, c) + x[k] + t) & 0xFFFFFFFF, s)
            elif i % 4 == 2: c = rotl((c + h(d, a, b) + x[k] + t) & 0xFFFFFFFF, s)
            else: b = rotl((b + h(c, d, a) + x[k] + t) & 0xFFFFFFFF, s)
        a, b = (a + aa) & 0xFFFFFFFF, (b + bb) & 0xFFFFFFFF
        c, d = (c + cc) & 0xFFFFFFFF, (d + dd) & 0xFFFFFFFF
    return struct.pack("<4I", a, b, c, d)


# OpenSSL digest names (lower case, "rsa-" prefix dropped) -> hashlib name; md4 is ours.
_DIGESTS = {
    "md4": "md4", "md5": "md5", "sha1": "sha1", "sha224": "sha224", "sha256": "sha256",
    "sha384": "sha384", "sha512": "sha512", "sha512-224": "sha512_224",
    "sha512/224": "sha512_224", "sha512-256": "sha512_256", "sha512/256": "sha512_256",
    "sha3-224": "sha3_224", "sha3-256": "sha3_256", "sha3-384": "sha3_384",
    "sha3-512": "sha3_512", "ripemd160": "ripemd160", "ripemd": "ripemd160",
    "rmd160": "ripemd160", "blake2b512": "blake2b", "blake2s256": "blake2s", "sm3": "sm3",
    "md5-sha1": "md5-sha1", "sha2-224": "sha224", "sha2-256": "sha256", "sha2-384": "sha384",
    "sha2-512": "sha512",
}


_RSA_ALIASED = ("md4", "md5", "ripemd160", "sha1", "sha224", "sha256", "sha384", "sha512")


def _digest_name(name: bytes) -> str:
    key = text(name).lower()
    if key.startswith("rsa-"):
        key = key[4:]
    found = _DIGESTS.get(key)
    if found is None or (found != "md4" and found not in hashlib.algorithms_available):
        raise ScriptError(f"Unknown digest algorithm: {text(name)}")
    return found


def digest_bytes(name: str, data: bytes) -> bytes:
    if name == "md4":
        return _md4(data)
    return hashlib.new(name, data).digest()


class _Md4:
    """hashlib's interface for MD4, so hmac can use it."""
    digest_size, block_size = 16, 64

    def __init__(self, data: bytes = b""):
        self._data = bytearray(data)

    def update(self, data: bytes) -> None:
        self._data += data

    def copy(self) -> "_Md4":
        return _Md4(bytes(self._data))

    def digest(self) -> bytes:
        return _md4(bytes(self._data))


# -- ciphers -----------------------------------------------------------------------------------

def _variable_key(key: bytes, shortest: int, longest: int) -> bytes:
    """A key for a cipher of variable key length. (Nmap hands OpenSSL the cipher's default
    length, reading past a shorter key: undefined, so a short key is padded with NULs.)"""
    return key[:longest].ljust(shortest, b"\0")


def _cipher(name: str, key: bytes, iv: bytes | None):
    """(cryptography Cipher, block size in bytes) for an OpenSSL cipher name."""
    from cryptography.hazmat.decrepit.ciphers import algorithms as old
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    lowered = name.lower()
    if lowered in ("rc4", "arc4"):
        return Cipher(old.ARC4(_variable_key(key, 5, 256)), mode=None), 1
    makers = {
        "aes-128": (algorithms.AES, 16, 16), "aes-192": (algorithms.AES, 24, 16),
        "aes-256": (algorithms.AES, 32, 16), "des": (old.TripleDES, 8, 8),
        "des-ede": (old.TripleDES, 16, 8), "des-ede3": (old.TripleDES, 24, 8),
        "bf": (old.Blowfish, None, 8), "cast5": (old.CAST5, None, 8),
        "camellia-128": (old.Camellia, 16, 16), "camellia-256": (old.Camellia, 32, 16),
    }
    if lowered in makers:  # no mode in the name: OpenSSL's default for the family
        family, mode_name = lowered, "ecb" if lowered in ("des-ede", "des-ede3") else "cbc"
    else:
        family, _, mode_name = lowered.rpartition("-")
    maker = makers.get(family)
    if maker is None or mode_name not in ("cbc", "ecb"):
        raise ScriptError(f"Unknown cipher algorithm: {name}")
    algorithm, key_size, block = maker
    if key_size is not None and len(key) < key_size:
        raise ScriptError("OpenSSL error: error:03000082:digital envelope routines::invalid "
                          "key length")
    if key_size is not None:
        key = key[:key_size]
    elif family == "bf":
        key = _variable_key(key, 4, 56)
    elif family == "cast5":
        key = _variable_key(key, 5, 16)
    if family == "des":
        key = key * 3  # single DES as triple DES with one key
    elif family == "des-ede":
        key = key + key[:8]
    mode = modes.ECB() if mode_name == "ecb" else modes.CBC((iv or b"").ljust(block, b"\0")[:block])
    return Cipher(algorithm(key), mode), block


_WRONG_FINAL = "OpenSSL error: error:1C80006B:Provider routines::wrong final block length"


def _crypt(encrypting: bool, name: bytes, key: bytes, iv, data: bytes, padding) -> bytes:
    cipher, block = _cipher(text(name), bytes(key or b""), bytes(iv) if iv else None)
    data = bytes(data or b"")
    pad = bool(padding) and block > 1
    if encrypting:
        if pad:
            fill = block - len(data) % block
            data += bytes([fill]) * fill
        elif block > 1 and len(data) % block:
            raise ScriptError(_WRONG_FINAL)
        context = cipher.encryptor()
        return context.update(data) + context.finalize()
    if block > 1 and len(data) % block:
        raise ScriptError(_WRONG_FINAL)
    context = cipher.decryptor()
    plain = context.update(data) + context.finalize()
    if pad:
        fill = plain[-1] if plain else 0
        if not 1 <= fill <= block or plain[-fill:] != bytes([fill]) * fill:
            raise ScriptError("OpenSSL error: error:1C800064:Provider routines::bad decrypt")
        plain = plain[:-fill]
    return plain


def des_string_to_key(data: bytes) -> bytes:
    """56 bits -> a DES key of 8 bytes of 7 bits each, the low bit left clear (as Nmap's,
    which sets no parity: DES ignores it)."""
    if len(data) != 7:
        raise ScriptError("String must have length of 7 bytes.")
    bits = int.from_bytes(data, "big")
    key = bytearray()
    for i in range(8):
        key.append(((bits >> (49 - 7 * i)) & 0x7F) << 1)
    return bytes(key)


SUPPORTED_CIPHERS = ("aes-128-cbc", "aes-128-ecb", "aes-192-cbc", "aes-192-ecb", "aes-256-cbc",
                     "aes-256-ecb", "bf-cbc", "bf-ecb", "camellia-128-cbc", "camellia-128-ecb",
                     "camellia-256-cbc", "camellia-256-ecb", "cast5-cbc", "cast5-ecb", "des-cbc",
                     "des-ecb", "des-ede", "des-ede-cbc", "des-ede3", "des-ede3-cbc", "rc4")


def functions() -> dict:
    @lua_api
    def dec2bn(digits):
        return _bn(_parse_prefix(text(digits or b""), 10, "0123456789"))

    @lua_api
    def hex2bn(digits):
        return _bn(_parse_prefix(text(digits or b""), 16, "0123456789abcdefABCDEF"))

    @lua_api
    def bin2bn(data):
        return bytes(data).lstrip(b"\0"), False

    @lua_api
    def bn2dec(mag, neg):
        return str(_int(mag, neg)).encode()

    @lua_api
    def bn2hex(mag, neg):
        return _hex(_int(mag, neg)).encode()

    @lua_api
    def num_bits(mag, neg):
        return int.from_bytes(mag, "big").bit_length()

    @lua_api
    def add(m1, n1, m2, n2):
        return _bn(_int(m1, n1) + _int(m2, n2))

    @lua_api
    def div(m1, n1, m2, n2):
        q, r = _truncated_divmod(_int(m1, n1), _int(m2, n2))
        return (*_bn(q), *_bn(r))

    @lua_api
    def mod_exp(m1, n1, m2, n2, m3, n3):
        modulus = _int(m3, n3)
        if modulus == 0:
            return _bn(0)
        return _bn(pow(_int(m1, n1), _int(m2, n2), abs(modulus)))

    @lua_api
    def set_bit(mag, neg, bit, on):
        value = abs(_int(mag, neg))
        value = value | (1 << int(bit)) if on else value & ~(1 << int(bit))
        return _bn(-value if neg else value)

    @lua_api
    def is_prime(mag, neg, safe):
        """is_prime: one boolean; is_safe_prime: (safe, prime), as Nmap's (observed)."""
        value = _int(mag, neg)
        prime = is_probable_prime(value)
        if not safe:
            return prime
        return prime and is_probable_prime((value - 1) // 2), prime

    @lua_api
    def rand(bits):
        bits = int(bits)
        return _bn(random.SystemRandom().getrandbits(bits) if bits > 0 else 0)

    @lua_api
    def rand_bytes(count):
        return os.urandom(max(0, int(count)))

    @lua_api
    def digest(name, data):
        return digest_bytes(_digest_name(name), bytes(data or b""))

    @lua_api
    def hmac(name, key, data):
        algorithm = _digest_name(name)
        constructor = _Md4 if algorithm == "md4" else algorithm
        return hmac_module.new(bytes(key or b""), bytes(data or b""), constructor).digest()

    @lua_api
    def encrypt(name, key, iv, data, padding):
        return _crypt(True, name, key, iv, data, padding)

    @lua_api
    def decrypt(name, key, iv, data, padding):
        return _crypt(False, name, key, iv, data, padding)

    @lua_api
    def DES_string_to_key(data):
        return des_string_to_key(bytes(data or b""))

    @lua_api
    def supported_digests():
        names = [n for n, h in _DIGESTS.items()
                 if h == "md4" or h in hashlib.algorithms_available]
        names += [f"RSA-{n.upper()}" for n in names if n in _RSA_ALIASED]
        return "\n".join(sorted(names)).encode()

    @lua_api
    def supported_ciphers():
        return "\n".join(SUPPORTED_CIPHERS).encode()

    return {"dec2bn": dec2bn, "hex2bn": hex2bn, "bin2bn": bin2bn, "bn2dec": bn2dec,
            "bn2hex": bn2hex, "num_bits": num_bits, "add": add, "div": div,
            "mod_exp": mod_exp, "set_bit": set_bit, "is_prime": is_prime, "rand": rand,
            "rand_bytes": rand_bytes, "digest": digest, "hmac": hmac, "encrypt": encrypt,
            "decrypt": decrypt, "DES_string_to_key": DES_string_to_key,
            "supported_digests": supported_digests, "supported_ciphers": supported_ciphers}
