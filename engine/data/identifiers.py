"""Which columns of an uploaded table look like direct identifiers (or strong quasi-identifiers).

Two kinds of evidence, both cheap and explainable to a compliance reviewer:
- the column's name (email, phone, ssn, national_id, iban, first_name, customer_id, zip, date_of_birth, ...);
  generic "name"/"id" names count only when most values differ (a `hospital_id` with 4 values is a site code);
- its values: e-mail, SSN, UK NI number, IBAN, card number, IP address and phone-number patterns (half the
  values or more), and text columns where (almost) every row differs, or whole numbers that are all different
  and in sequence (row numbers) or very large (customer or account numbers);
- the values as written (digits, length, leading zeros), so that a neutrally named column is caught even when
  values repeat: digit-only codes of one length (7 digits or more) with many different values (phone numbers,
  national ids, account numbers), 5-digit codes (postcodes), and dates (2024-03-01, 01/03/1985, 19850301,
  12 Mar 1985) with many different values (dates of birth or of events are quasi-identifiers).
Measurements (non-integer numbers, or columns named like one: income, amount, price...) are never flagged for
their digits or for being all different; round numbers (mostly multiples of 100) are amounts, not codes.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

# Column-name rules over the name's lower-case tokens joined by "_" (customerId -> customer_id).
_PEOPLE = r"customer|client|applicant|patient|member|policy|claim|account|employee|user|case|loan|person|subject"
NAME_RULES: list[tuple[str, str, bool]] = [  # (pattern, reason, only when most values differ)
    (r"e_?mail(_address)?|mail", "its name suggests an e-mail address", False),
    (r"phone(_?number|_no)?|tel|telephone|mobile(_?(phone|number|no))?|cell_?phone|fax", "its name suggests a phone number", False),
    (r"ssn|social_security(_number|_no)?|national_?id|national_insurance(_number|_no)?|nino|bsn|tax_?id|"
     r"passport(_number|_no)?|driver_?s?_licen[cs]e(_number|_no)?|id_(number|card)|nhs_?(number|no)|mrn|"
     r"medical_record(_number|_no)?", "its name suggests a national id or document number", False),
    (r"iban|account_?(number|no|num)|card_?(number|no)|routing_number|sort_code",
     "its name suggests an account or card number", False),
    (r"(street_)?address(_line_?\d?)?|street|ip(_address)?", "its name suggests a postal or network address", False),
    (r"zip(_?code)?|post_?code|postal_?code",
     "quasi-identifier: its name suggests a postcode, which with birth date and sex singles out most people", False),
    (r"dob|date_of_birth|birth_?date|birthday",
     "quasi-identifier: its name suggests a date of birth, which with postcode and sex singles out most people", False),
    (r"((first|last|given|family|full|middle|maiden|user|contact|" + _PEOPLE + r")_?)?name|surname|forename",
     "its name suggests a personal name", True),
    (r"id|uuid|guid|((" + _PEOPLE + r"|record|row)_?(id|number|no|num|nr|ref|reference))",
     "its name suggests a record or person identifier", True),
]
CONTENT_RULES: list[tuple[re.Pattern, str]] = [  # matched against values with surrounding spaces removed
    (re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"), "e-mail addresses"),
    (re.compile(r"^\d{3}-\d{2}-\d{4}$"), "US social security numbers"),
    (re.compile(r"^[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]$"), "UK national insurance numbers"),
    (re.compile(r"^[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}$"), "IBANs"),
    (re.compile(r"^\d{4}(?:[ -]?\d{4}){3}$"), "payment card numbers"),
    (re.compile(r"^(?:\d{1,3}\.){3}\d{1,3}$"), "IP addresses"),
]
_PHONE = re.compile(r"^(?:\+|00)?[\d\s().\-/]{7,}$")
_DATE = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")
CONTENT_SHARE = 0.5  # share of values matching a pattern that flags the column
DIGITS_SHARE = 0.9  # share of digit-only values (as written) for the digit rules below
MIN_ID_DIGITS = 7  # a digit-only code at least this long, of one length, many values: a phone number or an id
MANY_VALUES = 0.5  # ... "many": at least this share of its values differ (repeats allowed)
MIN_CODES = 10  # at least this many different values before a column of 5-digit codes or dates is flagged
_FULL_DATE = re.compile(
    r"^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})|\d{1,2} [A-Za-z]{3,9}\.?,? \d{4}|"
    r"[A-Za-z]{3,9}\.? \d{1,2},? \d{4})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?$")
# Names of measurements: their digits say nothing about who someone is (an income of 43215 is not a postcode).
_MEASURE = re.compile(r"(^|_)(income|salary|wage|wages|amount|price|cost|costs|balance|revenue|sales|spend|spending|fee|"
                      r"fees|payment|debt|limit|value|total|sum|count|weight|height|population|area|volume|duration|"
                      r"seconds|minutes|hours|days|months|years|age|score|rate|km|kg|cm|usd|eur|gbp)(_|$)")


def _tokens(name: str) -> str:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name))
    return "_".join(token for token in re.split(r"[^a-z0-9]+", spaced.lower()) if token)


def identifier_reason(name: str, values: pd.Series, kind: str, n_rows: int, written: pd.Series | None = None
                      ) -> str | None:
    """Why a column looks like a direct identifier (or a strong quasi-identifier), or None. `written`: the values as
    they were written in the file (text, before any number was read: leading zeros and lengths kept)."""
    present = values.dropna()
    distinct = present.nunique()
    varied = distinct > max(20, 0.05 * n_rows)  # a 'hospital_id' with 4 values is a site code, not a person's id
    reasons = []
    tokens = _tokens(name)
    for pattern, reason, needs_variety in NAME_RULES:
        if re.fullmatch(pattern, tokens) or re.search(rf"(^|_)(?:{pattern})$", tokens):
            if varied or (not needs_variety and distinct > 2):  # a yes/no 'has_email' is not an address
                reasons.append(reason)
                break
    text = (present if written is None else written.dropna()).astype(str).str.strip().head(2000)
    if len(text):
        for pattern, what in CONTENT_RULES:
            share = text.str.match(pattern).mean()
            if share >= CONTENT_SHARE:
                reasons.append(f"{share:.0%} of its values look like {what}")
        if kind == "categorical":
            digits = text.str.count(r"\d")
            phone = text.str.match(_PHONE) & ~text.str.match(_DATE) & digits.between(9, 15)
        else:  # a number written as +44... or 0044...: the sign or the zeros say it is a phone number
            phone = text.str.fullmatch(r"(?:\+|00)\d{8,14}")
        if phone.mean() >= CONTENT_SHARE and not any("social security" in r for r in reasons):
            reasons.append(f"{phone.mean():.0%} of its values look like phone numbers")
        if not reasons:
            reasons.extend(_written_form_reasons(text, tokens))
    if reasons:  # one piece of evidence is enough; uniqueness below is for columns with neutral names
        return "; ".join(dict.fromkeys(reasons))
    if kind == "categorical" and len(present) >= 10 and distinct >= 0.9 * len(present):
        reasons.append("every row has a different value, like a name or a record number" if distinct == len(present)
                       else f"{distinct / len(present):.0%} of its rows have a different value, like names or record numbers")
    elif kind == "numeric" and len(present) == n_rows >= 10 and distinct == n_rows:
        numbers = present.to_numpy(float)
        if np.all(numbers == np.round(numbers)):
            in_sequence = bool(np.all(np.diff(numbers) > 0)) or (  # in file order, or a shuffled dense range
                n_rows >= 30 and numbers.max() - numbers.min() + 1 <= 1.5 * n_rows)
            if in_sequence:
                reasons.append("every row has a different whole number, in sequence: a row or record number")
            elif numbers.min() >= 1e6:
                reasons.append("every row has a different large whole number, like an account or customer number")
    return "; ".join(dict.fromkeys(reasons)) or None


def _written_form_reasons(text: pd.Series, tokens: str) -> list[str]:
    """Evidence from how values are written (`text`: present values as written), for columns whose name says
    nothing: digit-only codes, 5-digit postcodes, dates. Repeated values do not hide them."""
    distinct = text.nunique()
    dates = text.str.fullmatch(_FULL_DATE)
    if dates.mean() >= CONTENT_SHARE and distinct >= MIN_CODES:
        return [f"{dates.mean():.0%} of its values look like dates ({distinct} different): a date of birth or of an "
                "event is a quasi-identifier, which with postcode and sex singles out most people"]
    digit_only = text.str.fullmatch(r"\d+")
    if digit_only.mean() < DIGITS_SHARE or _MEASURE.search(tokens):
        return []
    codes = text[digit_only]
    lengths = codes.str.len()
    length = int(lengths.mode().iloc[0])
    one_length = (lengths == length).mean() >= DIGITS_SHARE
    leading_zero = bool((codes.str.startswith("0") & (lengths > 1)).any())
    round_share = codes.str.fullmatch(r"\d*00").mean()  # amounts are mostly round; codes almost never
    if round_share >= CONTENT_SHARE and not leading_zero:
        return []
    if length == 8 and _compact_dates(codes).mean() >= DIGITS_SHARE and distinct >= MIN_CODES:
        return [f"{distinct} different values written as dates (YYYYMMDD): a date of birth or of an event is a "
                "quasi-identifier, which with postcode and sex singles out most people"]
    if length == 5 and one_length and distinct >= MIN_CODES:
        return [f"quasi-identifier: its values are 5-digit codes ({distinct} different), like postcodes, which with "
                "birth date and sex single out most people"]
    if length >= MIN_ID_DIGITS and (one_length or leading_zero) and distinct >= max(MIN_CODES, MANY_VALUES * len(text)):
        return [f"its values are {length}-digit codes, {distinct} different in {len(text)} rows: like phone numbers, "
                "national ids or account numbers"]
    return []


def _compact_dates(codes: pd.Series) -> pd.Series:
    """Whether 8-digit codes read as YYYYMMDD dates from 1900 to 2099."""
    year, month, day = (pd.to_numeric(codes.str.slice(a, b), errors="coerce") for a, b in ((0, 4), (4, 6), (6, 8)))
    return year.between(1900, 2099) & month.between(1, 12) & day.between(1, 31)
