"""Console passwords: argon2id hashes (argon2-cffi), the password rules, constant-time checks.

Parameters (``DEFAULT_PARAMS``): argon2id, 3 passes over 64 MiB with 4 lanes, 16-byte salt,
32-byte tag: the second recommended option of RFC 9106 section 4 for machines that cannot
spend 2 GiB per login. One hash takes ~0.1 s on the project machine, which bounds a guesser
who stole the table, while a login stays quick. The parameters travel inside each hash
(``$argon2id$v=19$m=65536,t=3,p=4$...``), so raising them later keeps old hashes valid;
``Passwords.needs_rehash`` tells the login to store a new hash with the new parameters.

Passwords never reach a log line, an exception message or the database in clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH: Final = 10
# Bounded so one request cannot make the server hash megabytes; passphrases fit easily.
MAX_LENGTH: Final = 256


@dataclass(frozen=True)
class Argon2Params:
    """argon2id cost parameters (memory in KiB)."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 4
    hash_len: int = 32
    salt_len: int = 16


DEFAULT_PARAMS: Final = Argon2Params()
# Tests only: the same algorithm at a cost that keeps a test suite fast. Never in production.
TEST_PARAMS: Final = Argon2Params(time_cost=1, memory_kib=1024, parallelism=1)


class PasswordRejected(ValueError):
    """A new password that breaks the rules; ``id`` is stable (password.too_short ...)."""

    def __init__(self, error_id: str, message: str) -> None:
        self.id = error_id
        self.message = message
        super().__init__(f"{error_id}: {message}")


def check_password_rules(password: str, user_name: str | None = None) -> None:
    """Refuse (PasswordRejected) a password too short, too long, blank or equal to the name."""
    if len(password) < MIN_LENGTH:
        raise PasswordRejected("password.too_short",
                               f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordRejected("password.too_long",
                               f"a password has at most {MAX_LENGTH} characters")
    if not password.strip():
        raise PasswordRejected("password.blank", "a password of only spaces")
    if user_name is not None and password.strip().lower() == user_name.lower():
        raise PasswordRejected("password.is_name", "the password is the user name")


class Passwords:
    """Hash and verify passwords with one set of argon2id parameters."""

    def __init__(self, params: Argon2Params = DEFAULT_PARAMS) -> None:
        self.params = params
        self._hasher = PasswordHasher(time_cost=params.time_cost,
                                      memory_cost=params.memory_kib,
                                      parallelism=params.parallelism,
                                      hash_len=params.hash_len, salt_len=params.salt_len,
                                      type=Type.ID)
        # Verified against when the user is unknown or has no password, so the time a
        # refusal takes does not tell which login names exist. Made at the first such login,
        # not here: an app (or a test) that never sees one does not pay for a hash.
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        """The argon2id hash (PHC string, salt and parameters inside) of a password."""
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """Whether the password matches the hash; with no hash, spend the same time and say
        no. The comparison inside argon2 is constant-time."""
        if len(password) > MAX_LENGTH:
            password = password[:MAX_LENGTH + 1]  # still wrong, but cheap to hash
        try:
            if stored_hash is None:
                if self._dummy is None:
                    self._dummy = self._hasher.hash("hotline1022 dummy password, never valid")
                self._hasher.verify(self._dummy, password)
                return False  # even if it matched the dummy
            return self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether the hash was made with other parameters than these (then store a new one)."""
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except (InvalidHashError, ValueError):
            return True
