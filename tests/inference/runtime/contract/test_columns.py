"""Typed columns: requests as typed rows (records, columns, rows), each mistake naming its row and column."""

import pytest

from inference.runtime.contract.columns import ColumnError, column_spec, generated_rows, plain_numeric, typed_rows

COLUMNS = [column_spec("country", "string", False), column_spec("age", "int64", False),
           column_spec("income", "float64", True), column_spec("member", "bool", False)]


def rows(raw, max_rows=100):
    return typed_rows(raw, COLUMNS, max_rows=max_rows)


def test_records_columns_and_rows_give_the_same_typed_rows():
    records = [{"country": "fr", "age": 31, "income": 42000, "member": True},
               {"member": False, "income": None, "age": 55.0, "country": "de"}]
    columns = {"country": ["fr", "de"], "age": [31, 55], "income": [42000, None], "member": [True, False]}
    positional = [["fr", 31, 42000.0, True], ["de", 55, None, False]]
    expected = [["fr", 31, 42000.0, True], ["de", 55, None, False]]
    assert rows(records) == rows(columns) == rows(positional) == expected
    assert [type(v) for v in rows(records)[0]] == [str, int, float, bool]
    assert rows(records[0]) == expected[:1]  # one record on its own


@pytest.mark.parametrize(("raw", "message"), [
    ([{"country": 3, "age": 1, "income": 1.0, "member": True}], "inputs[0].country: expected a string, got number"),
    ([{"country": "fr", "age": "31", "income": 1.0, "member": True}], "inputs[0].age: expected a number, got string"),
    ([{"country": "fr", "age": 1.5, "income": 1.0, "member": True}], "inputs[0].age: expected an integer, got 1.5"),
    ([{"country": None, "age": 1, "income": 1.0, "member": True}], "inputs[0].country: null is not allowed"),
    ([{"country": "fr", "age": 1, "income": "NaN", "member": True}], "inputs[0].income: NaN and Infinity"),
    ([{"country": "fr", "age": 1, "income": 1.0, "member": 1}], "inputs[0].member: expected true or false"),
    ([{"country": "fr", "age": 1, "income": 1.0}], "inputs[0]: missing columns: member"),
    ([{"country": "fr", "age": 1, "income": 1.0, "member": True, "city": "x"}], "unknown columns: city"),
    ({"country": ["fr", "de"], "age": [1], "income": [1.0, 2.0], "member": [True, True]},
     "inputs.age: expected 2 values like 'country', got 1"),
    ({"country": ["fr", 7], "age": [1, 2], "income": [1.0, 2.0], "member": [True, True]},
     "inputs.country[1]: expected a string, got number"),
    ([["fr", 1, 1.0]], "inputs[0]: expected 4 values (country, age, income, member), got 3"),
    ([{"country": "fr", "age": 1, "income": 1.0, "member": True}, 5], "inputs[1]: expected an object or a list"),
])
def test_each_mistake_names_the_row_and_the_column(raw, message):
    with pytest.raises(ColumnError) as refused:
        rows(raw)
    assert message in refused.value.message


def test_too_many_rows_is_a_413_and_no_rows_a_400():
    with pytest.raises(ColumnError) as refused:
        rows([["fr", 1, 1.0, True]] * 3, max_rows=2)
    assert refused.value.status == 413
    with pytest.raises(ColumnError, match="must not be empty"):
        rows([])


def test_plain_float_columns_keep_the_numeric_fast_path():
    assert plain_numeric([column_spec("a", "float64", False), column_spec("b", "float64", False)])
    assert not plain_numeric([column_spec("a", "float64", True)])
    assert not plain_numeric([column_spec("a", "float32", False)])


def test_generated_rows_are_valid_and_use_known_categories():
    generated = generated_rows(COLUMNS, 3, {"country": ["fr", "de"]})
    assert rows(generated) == generated
    assert [row[0] for row in generated] == ["fr", "de", "fr"]
