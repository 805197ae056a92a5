"""Figures on admin pages: rounded, with units (core/figures.py)."""

from core import figures


def test_numbers_are_rounded_to_what_a_person_reads():
    assert figures.number(3495.221714999957) == "3,495.2"
    assert figures.number(0.0714) == "0.0714"
    assert figures.number(0.931234) == "0.9312"
    assert figures.number(12.3456) == "12.35"
    assert figures.number(1234567) == "1,234,567"
    assert figures.number(5.0) == "5"
    assert figures.number(True) == "yes"
    assert figures.number(None) == "\u2013"


def test_units():
    assert figures.ms(3495.221714999957) == "3,495 ms"
    assert figures.ms(12.345) == "12.3 ms"
    assert figures.ms(1.23456) == "1.23 ms"
    assert figures.megabytes(123.456) == "123.5 MB"
    assert figures.percent(0.0714) == "7.1 %"
    assert figures.percent(0.0004) == "0.04 %"
    assert figures.percent(0.0) == "0 %"
    assert figures.per_second(1234.5678) == "1,234.6 req/s"
    assert figures.size(800) == "800 B"
    assert figures.size(4_400) == "4.3 KB"
    assert figures.size(4_400_000) == "4.2 MB"
    assert figures.size(3 * 1024 ** 3) == "3.0 GB"


def test_ago_is_coarse_and_dates_past_a_day():
    assert figures.ago(1000.0, now=1012.0) == "12 s ago"
    assert figures.ago(1000.0, now=1000.0 + 180) == "3 min ago"
    assert figures.ago(1000.0, now=1000.0 + 7200) == "2 h ago"
    assert figures.ago(0.0, now=3 * 86400) == "1970-01-01 00:00 UTC"
    assert figures.ago(None) == "\u2013"
