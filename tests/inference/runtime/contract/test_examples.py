"""Input examples (CSV or JSON) and how columns are settled from the model, the example and the signature."""

import pytest

from inference.runtime.contract.errors import SignatureMismatch
from inference.runtime.contract.examples import NUMBER, ExampleError, merge_columns, parse_example
from inference.runtime.contract.signature import build_signature, merge_signatures

CSV = b"country,age,income,postcode,member\nfr,31,42000.5,75001,true\nde,55,,10115,false\n"


def test_a_csv_example_is_typed_column_by_column_with_empty_cells_missing():
    assert parse_example(CSV, max_rows=10) == [
        {"country": "fr", "age": 31, "income": 42000.5, "postcode": 75001, "member": True},
        {"country": "de", "age": 55, "income": None, "postcode": 10115, "member": False},
    ]
    mixed = parse_example(b"code\n75001\n2A004\n", max_rows=10)
    assert mixed == [{"code": "75001"}, {"code": "2A004"}]  # one text cell keeps the whole column text


def test_a_json_example_is_kept_as_sent():
    assert parse_example(b'[{"a": 1, "b": null}]', max_rows=10) == [{"a": 1, "b": None}]
    assert parse_example(b'["good service", "late"]', max_rows=10) == ["good service", "late"]


@pytest.mark.parametrize(("data", "message"), [
    (b'[{"a": NaN}]', "not valid JSON"),
    (b'[{"a": 1}, [1]]', "not a mix"),
    (b"\xff\xfe", "not UTF-8"),
    (b"a,b\n1\n", "line 2 of the input example has 1 cells"),
    (b"a,a\n1,2\n", "name each column once"),
    (b"[]", "no rows"),
])
def test_unreadable_examples_say_why(data, message):
    with pytest.raises(ExampleError, match=message):
        parse_example(data, max_rows=10)


def test_too_many_rows_are_refused():
    with pytest.raises(ExampleError, match="at most 2"):
        parse_example(b"a\n1\n2\n3\n", max_rows=2)


def test_the_model_the_example_and_the_signature_complete_each_other():
    model = [{"name": "country", "dtype": "string", "nullable": None},
             {"name": "age", "dtype": NUMBER, "nullable": None},
             {"name": "income", "dtype": None, "nullable": True}]
    example = [{"country": "fr", "age": 31, "income": 1.5}, {"country": "de", "age": 40, "income": None}]
    given = [{"name": "age", "dtype": "float64"}, {"name": "country", "dtype": "string", "nullable": False},
             {"name": "income", "dtype": "float64"}]
    assert merge_columns(model, None, example) == [
        {"name": "country", "dtype": "string", "nullable": False},
        {"name": "age", "dtype": "int64", "nullable": False},
        {"name": "income", "dtype": "float64", "nullable": True},
    ]
    assert merge_columns(model, given, example)[1] == {"name": "age", "dtype": "float64", "nullable": False}
    assert merge_columns(model, None, None)[1] == {"name": "age", "dtype": "float64", "nullable": False}


@pytest.mark.parametrize(("model", "given", "example", "message"), [
    ([{"name": "country", "dtype": "string"}], None, [{"country": 3}],
     "column 'country': the input example has int64 numbers but the model takes strings"),
    ([{"name": "age", "dtype": NUMBER}], [{"name": "age", "dtype": "string"}], None,
     "column 'age': the signature says string but the model takes numbers"),
    (None, [{"name": "age", "dtype": "int64"}], [{"age": 3.5}], "input_example[0].age: expected an integer"),
    (None, [{"name": "age", "dtype": "float64", "nullable": False}], [{"age": None}],
     "input_example[0].age: null is not allowed"),
    ([{"name": "a"}, {"name": "b"}], None, [{"a": 1, "c": 2}], "missing columns: b; unknown columns: c"),
    (None, None, [{"a": 1}, {"a": 2, "b": 3}], "input_example[1]: unknown columns: b"),
    (None, None, [{"a": 1}, {"a": "x"}], "column 'a' mixes number and string values"),
])
def test_contradictions_name_the_column(model, given, example, message):
    model = [{"dtype": None, "nullable": None, **column} for column in model or []] or None
    with pytest.raises(SignatureMismatch) as refused:
        merge_columns(model, given, example)
    assert message in str(refused.value)


def test_merged_signatures_take_their_names_and_width_from_the_columns():
    inferred = build_signature(input_kind="tabular", input_dtype="float64", n_features=None, classes=[0, 1])
    merged = merge_signatures(inferred, None, [{"country": "fr", "age": 3.0}])
    assert merged["feature_names"] == ["country", "age"] and merged["n_features"] == 2
    assert merged["columns"][0] == {"name": "country", "dtype": "string", "nullable": False}
    wide = build_signature(input_kind="tabular", input_dtype="float64", n_features=3)
    with pytest.raises(SignatureMismatch, match="n features"):
        merge_signatures(wide, None, [{"country": "fr", "age": 3.0}])
