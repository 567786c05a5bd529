"""Which columns of an uploaded table look like direct identifiers (or strong quasi-identifiers).

Two kinds of evidence, both cheap and explainable to a compliance reviewer:
- the column's name (email, phone, ssn, national_id, iban, first_name, customer_id, zip, date_of_birth, ...);
  generic "name"/"id" names count only when most values differ (a `hospital_id` with 4 values is a site code);
- its values: e-mail, SSN, UK NI number, IBAN, card number, IP address and phone-number patterns (half the
  values or more), and text columns where (almost) every row differs, or whole numbers that are all different
  and in sequence (row numbers) or very large (customer or account numbers).
Measurements (non-integer numbers) are never flagged for being all different.
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


def _tokens(name: str) -> str:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name))
    return "_".join(token for token in re.split(r"[^a-z0-9]+", spaced.lower()) if token)


def identifier_reason(name: str, values: pd.Series, kind: str, n_rows: int) -> str | None:
    """Why a column looks like a direct identifier (or a strong quasi-identifier), or None."""
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
    text = present.astype(str).str.strip().head(2000)
    if len(text):
        for pattern, what in CONTENT_RULES:
            share = text.str.match(pattern).mean()
            if share >= CONTENT_SHARE:
                reasons.append(f"{share:.0%} of its values look like {what}")
        if kind == "categorical":
            digits = text.str.count(r"\d")
            phone = text.str.match(_PHONE) & ~text.str.match(_DATE) & digits.between(9, 15)
            if phone.mean() >= CONTENT_SHARE and not any("social security" in r for r in reasons):
                reasons.append(f"{phone.mean():.0%} of its values look like phone numbers")
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
