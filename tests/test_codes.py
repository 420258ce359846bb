"""French codes: UAI check letters (property-based), INSEE codes, school years."""

from hypothesis import given, strategies as st

from preau.codes import (UAI_ALPHABET, insee_departement, is_valid_insee, is_valid_school_year, is_valid_uai,
                         make_uai, normal_birth_year, uai_check_letter, uai_departement)


def test_known_uai():
    assert uai_check_letter("0750654") == "D"  # 750654 mod 23 = 3 → D
    assert is_valid_uai("0750654D")
    assert not is_valid_uai("0750654E")
    assert "I" not in UAI_ALPHABET and "O" not in UAI_ALPHABET and "Q" not in UAI_ALPHABET
    assert len(UAI_ALPHABET) == 23


@given(st.integers(min_value=0, max_value=9_999_999))
def test_made_uai_is_valid_and_every_other_letter_is_not(n):
    code = make_uai(n)
    assert is_valid_uai(code)
    assert code[:7] == f"{n:07d}"
    for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        if letter != code[7]:
            assert not is_valid_uai(code[:7] + letter)


@given(st.text(max_size=10))
def test_uai_validator_never_crashes(text):
    assert is_valid_uai(text) in (True, False)


def test_departement_of_codes():
    assert uai_departement("0650012A") == "65"
    assert uai_departement("6200001A") == "2A" and uai_departement("7200001A") == "2B"
    assert insee_departement("65440") == "65" and insee_departement("97411") == "974"
    assert is_valid_insee("2A004") and is_valid_insee("01053") and not is_valid_insee("1053")
    assert not is_valid_insee(1053)


def test_school_years_and_normal_age():
    assert is_valid_school_year("2026-2027") and not is_valid_school_year("2026-2028")
    assert not is_valid_school_year("2026/2027")
    assert normal_birth_year("CP", 2026) == 2020 and normal_birth_year("CM2", 2026) == 2016
