"""PII masking for text sent to model endpoints that are not local, and its reversal.

`PiiVault.mask(text)` replaces emails, phone numbers, card numbers, API keys/tokens and IP
addresses with stable placeholders (`<EMAIL_1>`, `<PHONE_1>`, `<CARD_1>`, `<SECRET_1>`,
`<IP_1>`): the same value always gets the same placeholder within a vault, so the model can
still refer to it. `PiiVault.restore_obj(args)` puts the real values back into the tool
arguments the model sends back (the gateway does this before validating them). The vault is a
pydantic model, so it can live in the graph state next to the messages it masked.

Detectors (chosen for precision on code-heavy text; see tests/unit/tools/test_pii.py for the
labelled sample and the measured precision/recall):
- EMAIL: RFC-5322-ish `local@domain.tld`; `icon@2x.png`-style file names are not emails.
- PHONE: Google's libphonenumber (`phonenumbers`), `Leniency.VALID`, in the configured regions
  plus any `+<country>` number; a bare run of digits without `+`, spaces, dashes, dots or
  parentheses is not taken as a phone number (in code it is almost always a number or an id).
- CARD: 13–19 digits (spaces or dashes allowed) that pass the Luhn check and start with a
  known issuer prefix (Visa, Mastercard, Amex, Discover, Diners, JCB, UnionPay, Maestro).
- SECRET: well-known token prefixes (OpenAI `sk-`, Anthropic `sk-ant-`, Stripe `sk_live_`…,
  GitHub `ghp_`/`gho_`/`github_pat_`…, AWS `AKIA`/`ASIA`, Slack `xox?-`, Google `AIza`,
  GitLab `glpat-`, Hugging Face `hf_`, npm `npm_`), JWTs, PEM private-key blocks, `Bearer`
  tokens, values assigned to secret-looking names (`api_key = "…"`, `PASSWORD=…`), and long
  high-entropy base64 strings. Bare hex (git SHAs, checksums) is left alone unless assigned to
  a secret-looking name.
- IP: IPv4 and IPv6 addresses validated by `ipaddress`; loopback, unspecified and broadcast
  addresses and dotted version numbers (`version 1.2.3.4`) are not masked.

Why not a library for everything: Presidio needs spaCy models downloaded at run time (not
possible here); scrubadub is unmaintained since 2023 and pulls scikit-learn and textblob;
detect-secrets scans files line by line with global plugin settings and reports no spans.
libphonenumber is the one piece that is hard to get right by hand, so it is the one dependency.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, cast

import phonenumbers
from pydantic import BaseModel, Field, PrivateAttr

__all__ = ["PII_TYPES", "PiiMatch", "PiiType", "PiiVault", "detect", "luhn_ok"]

PiiType = Literal["EMAIL", "PHONE", "CARD", "SECRET", "IP"]
PII_TYPES: tuple[PiiType, ...] = ("EMAIL", "PHONE", "CARD", "SECRET", "IP")
# Overlaps are resolved in this order: a token that contains an email is still a token.
_PRIORITY: dict[PiiType, int] = {"SECRET": 0, "EMAIL": 1, "CARD": 2, "IP": 3, "PHONE": 4}
_PLACEHOLDER = re.compile(r"<(EMAIL|PHONE|CARD|SECRET|IP)_(\d+)>")


@dataclass(frozen=True)
class PiiMatch:
    """One detected value: its type and span in the text."""

    type: PiiType
    start: int
    end: int
    value: str


# ------------------------------------------------------------------------------------- EMAIL
_FILE_EXTENSIONS = frozenset(
    "png jpg jpeg gif svg webp bmp ico css js mjs ts tsx jsx py json yaml yml toml md txt "
    "html htm xml pdf zip gz tar csv mp3 mp4 wav".split()
)
_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)


def _emails(text: str) -> Iterable[PiiMatch]:
    for m in _EMAIL.finditer(text):
        tld = m.group(0).rsplit(".", 1)[1].lower()
        if tld not in _FILE_EXTENSIONS:
            yield PiiMatch("EMAIL", m.start(), m.end(), m.group(0))


# ------------------------------------------------------------------------------------- PHONE
def _phones(text: str, regions: tuple[str, ...]) -> Iterable[PiiMatch]:
    seen: set[tuple[int, int]] = set()
    for region in regions or ("ZZ",):
        matcher = phonenumbers.PhoneNumberMatcher(
            text, region, leniency=phonenumbers.Leniency.VALID
        )
        for found in matcher:
            raw = found.raw_string
            if raw.isdigit():
                continue  # a bare number in code is an id or a constant, not a phone number
            span = (found.start, found.end)
            if span not in seen:
                seen.add(span)
                yield PiiMatch("PHONE", found.start, found.end, raw)


# -------------------------------------------------------------------------------------- CARD
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])")
_IIN = re.compile(
    r"^(?:4\d{12}(?:\d{3}){0,2}"  # Visa
    r"|5[1-5]\d{14}|2(?:2[2-9]\d|[3-6]\d\d|7[01]\d|720)\d{12}"  # Mastercard
    r"|3[47]\d{13}"  # Amex
    r"|6(?:011|5\d\d|4[4-9]\d)\d{12,15}"  # Discover
    r"|3(?:0[0-5]|[68]\d)\d{11,16}"  # Diners
    r"|35(?:2[89]|[3-8]\d)\d{12,15}"  # JCB
    r"|62\d{14,17}"  # UnionPay
    r"|(?:5018|5020|5038|5893|6304|6759|676[1-3])\d{8,15})$"  # Maestro
)


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a digit string."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _cards(text: str) -> Iterable[PiiMatch]:
    for m in _CARD.finditer(text):
        raw = m.group(0)
        if " " in raw and "-" in raw:
            continue
        digits = re.sub(r"[ -]", "", raw)
        if 13 <= len(digits) <= 19 and _IIN.match(digits) and luhn_ok(digits):
            yield PiiMatch("CARD", m.start(), m.end(), raw)


# ------------------------------------------------------------------------------------ SECRET
_TOKEN_PATTERNS = [
    r"sk-ant-[A-Za-z0-9_-]{20,}",
    r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
    r"(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",
    r"gh[pousr]_[A-Za-z0-9]{30,}",
    r"github_pat_[A-Za-z0-9_]{22,}",
    r"(?:AKIA|ASIA|AIDA|AROA)[0-9A-Z]{16}",
    r"xox[abposr]-[A-Za-z0-9-]{10,}",
    r"AIza[0-9A-Za-z_-]{35}",
    r"glpat-[A-Za-z0-9_-]{20,}",
    r"hf_[A-Za-z0-9]{30,}",
    r"npm_[A-Za-z0-9]{36}",
    r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
]
_TOKENS = re.compile(r"(?<![A-Za-z0-9_-])(?:" + "|".join(_TOKEN_PATTERNS) + r")(?![A-Za-z0-9_-])")
_PEM = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]+?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"
)
_BEARER = re.compile(r"(?i)\b(?:bearer|token)\s+(?P<v>[A-Za-z0-9._~+/=-]{20,})")
_SECRET_NAME = (
    r"(?:api[_-]?key|apikey|secret|token|passw(?:or)?d|passwd|pwd|access[_-]?key|auth[_-]?key"
    r"|private[_-]?key|client[_-]?secret|credentials?)"
)
_ASSIGNED_QUOTED = re.compile(
    r"(?i)\b[\w-]*"
    + _SECRET_NAME
    + r"[\w-]*[\"']?\s*(?:=|:|=>)\s*(?P<q>[\"'])(?P<v>[^\"'\s]{8,})(?P=q)"
)
_ASSIGNED_BARE = re.compile(
    r"(?i)\b[\w-]*" + _SECRET_NAME + r"[\w-]*\s*(?:=|:)\s*(?P<v>[A-Za-z0-9+/=_.~-]{16,})(?![\w(])"
)
_BASE64ISH = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{40,}={0,2}(?![A-Za-z0-9+/=_-])")
_DUMMY = re.compile(r"(?i)your|example|changeme|placeholder|xxxx|\*\*\*|<|>|\{|\}|\$|dummy")


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(c / len(value) * math.log2(c / len(value)) for c in counts.values())


def _mixed(value: str) -> bool:
    """At least 10 characters with lower case, upper case and digits (not a word or a path)."""
    return len(value) >= 10 and all(re.search(p, value) for p in (r"[a-z]", r"[A-Z]", r"\d"))


def _looks_secret(value: str, *, quoted: bool) -> bool:
    if _DUMMY.search(value) or len(set(value)) < 6:
        return False
    if value.replace("_", "").isalpha() and not quoted:
        return False  # an identifier such as get_password_from_vault
    if re.fullmatch(r"[A-Za-z_][\w.]*\(?", value):
        return quoted and bool(re.search(r"\d", value))
    return True


def _secrets(text: str) -> Iterable[PiiMatch]:
    for m in _PEM.finditer(text):
        yield PiiMatch("SECRET", m.start(), m.end(), m.group(0))
    for m in _TOKENS.finditer(text):
        yield PiiMatch("SECRET", m.start(), m.end(), m.group(0))
    for pattern, quoted in ((_ASSIGNED_QUOTED, True), (_ASSIGNED_BARE, False)):
        for m in pattern.finditer(text):
            if _looks_secret(m.group("v"), quoted=quoted):
                yield PiiMatch("SECRET", m.start("v"), m.end("v"), m.group("v"))
    for m in _BEARER.finditer(text):
        if _looks_secret(m.group("v"), quoted=False):
            yield PiiMatch("SECRET", m.start("v"), m.end("v"), m.group("v"))
    for m in _BASE64ISH.finditer(text):
        value = m.group(0)
        if _entropy(value) >= 4.3 and any(_mixed(part) for part in value.split("/")):
            yield PiiMatch("SECRET", m.start(), m.end(), value)


# ---------------------------------------------------------------------------------------- IP
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_VERSION_CONTEXT = re.compile(r"(?i)(?:version|release|ver\.?|v)\s*[:=]?\s*$")


def _ips(text: str) -> Iterable[PiiMatch]:
    for m in _IPV4.finditer(text):
        try:
            address = ipaddress.IPv4Address(m.group(0))
        except ValueError:
            continue
        if address.is_loopback or address.is_unspecified or str(address) == "255.255.255.255":
            continue
        if _VERSION_CONTEXT.search(text[max(0, m.start() - 12) : m.start()]):
            continue
        yield PiiMatch("IP", m.start(), m.end(), m.group(0))
    for m in _IPV6.finditer(text):
        raw = m.group(0)
        if sum(1 for group in raw.split(":") if group) < 3:
            continue
        try:
            address6 = ipaddress.IPv6Address(raw)
        except ValueError:
            continue
        if not (address6.is_loopback or address6.is_unspecified):
            yield PiiMatch("IP", m.start(), m.end(), raw)


# ----------------------------------------------------------------------------------- detect
def detect(
    text: str,
    *,
    types: Iterable[PiiType] = PII_TYPES,
    regions: tuple[str, ...] = ("US",),
) -> list[PiiMatch]:
    """Non-overlapping PII spans in `text`, in order of position."""
    wanted = set(types)
    found: list[PiiMatch] = []
    if "SECRET" in wanted:
        found += _secrets(text)
    if "EMAIL" in wanted:
        found += _emails(text)
    if "CARD" in wanted:
        found += _cards(text)
    if "IP" in wanted:
        found += _ips(text)
    if "PHONE" in wanted:
        found += _phones(text, regions)
    found = [m for m in found if not _PLACEHOLDER.fullmatch(m.value)]
    found.sort(key=lambda m: (_PRIORITY[m.type], -(m.end - m.start), m.start))
    chosen: list[PiiMatch] = []
    for match in found:
        if all(match.end <= c.start or match.start >= c.end for c in chosen):
            chosen.append(match)
    return sorted(chosen, key=lambda m: m.start)


class PiiVault(BaseModel):
    """The reversible mapping of one task: placeholder → original value."""

    originals: dict[str, str] = Field(default_factory=dict)
    """`<EMAIL_1>` → `ada@example.org`."""
    regions: tuple[str, ...] = ("US",)
    """Regions whose national phone formats are recognised (any `+` number always is)."""
    types: tuple[PiiType, ...] = PII_TYPES
    _by_value: dict[tuple[str, str], str] = PrivateAttr(default_factory=dict)

    def model_post_init(self, __context: object) -> None:
        """Index the existing mapping by value."""
        for placeholder, value in self.originals.items():
            kind = placeholder[1:].rsplit("_", 1)[0]
            self._by_value[(kind, value)] = placeholder

    def _placeholder(self, kind: PiiType, value: str) -> str:
        existing = self._by_value.get((kind, value))
        if existing is not None:
            return existing
        number = 1 + sum(1 for p in self.originals if p.startswith(f"<{kind}_"))
        placeholder = f"<{kind}_{number}>"
        self.originals[placeholder] = value
        self._by_value[(kind, value)] = placeholder
        return placeholder

    def mask(self, text: str) -> str:
        """Replace every detected value with its placeholder."""
        out: list[str] = []
        position = 0
        for match in detect(text, types=self.types, regions=self.regions):
            out.append(text[position : match.start])
            out.append(self._placeholder(match.type, match.value))
            position = match.end
        out.append(text[position:])
        return "".join(out)

    def restore(self, text: str) -> str:
        """Put the original values back for every placeholder this vault issued."""
        return _PLACEHOLDER.sub(lambda m: self.originals.get(m.group(0), m.group(0)), text)

    def mask_obj[T](self, value: T) -> T:
        """`mask` applied to every string inside a JSON-like value (dict keys too)."""
        return cast(T, _walk(value, self.mask))

    def restore_obj[T](self, value: T) -> T:
        """`restore` applied to every string inside a JSON-like value (dict keys too)."""
        return cast(T, _walk(value, self.restore))


def _walk(value: object, func: Callable[[str], str]) -> object:
    if isinstance(value, str):
        return func(value)
    if isinstance(value, list | tuple):
        return type(value)(_walk(item, func) for item in value)
    if isinstance(value, dict):
        return {func(k): _walk(v, func) for k, v in value.items()}
    return value
