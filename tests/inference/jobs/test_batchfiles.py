"""inference/jobs/batchfiles.py: parsing, checking and result writing of batch files (no Django)."""

import io
import json

import pytest

from inference.jobs.batchfiles import (
    CSV,
    JSONL,
    BatchFileError,
    InputSpec,
    Outcome,
    ResultWriter,
    check_file,
    detect_format,
    read_rows,
)

NAMED = InputSpec(kind="tabular", feature_names=("age", "income", "score"), n_features=3)
UNNAMED = InputSpec(kind="tabular", n_features=3)
TEXT = InputSpec(kind="text")


def check(data: bytes, spec=NAMED, fmt=CSV, max_rows=100):
    return check_file(io.BytesIO(data), fmt=fmt, spec=spec, max_rows=max_rows)


def rows(data: bytes, spec=NAMED, fmt=CSV):
    return list(read_rows(io.BytesIO(data), fmt=fmt, spec=spec))


def problem(data: bytes, **kwargs) -> BatchFileError:
    with pytest.raises(BatchFileError) as raised:
        check(data, **kwargs)
    return raised.value


def test_csv_columns_map_to_the_models_features_in_any_order():
    data = b"\xef\xbb\xbfscore,age,income\r\n1.5,30,\"2,000.5\"\n"
    assert problem(data).code == "invalid_batch_file"  # "2,000.5" is not a number
    data = b"\xef\xbb\xbfscore,age,income\r\n1.5,30,2000.5\r\n\r\n-2e-3,41,0\r\n"
    summary = check(data)
    assert (summary.format, summary.columns, summary.total_rows) == (CSV, ["score", "age", "income"], 2)
    parsed = rows(data)
    assert [row.model_input for row in parsed] == [[30.0, 2000.5, 1.5], [41.0, 0.0, -0.002]]
    assert [row.line for row in parsed] == [2, 4]
    assert parsed[0].record == ["1.5", "30", "2000.5"]


def test_wrong_columns_are_named():
    error = problem(b"age,income,height\n1,2,3\n")
    assert error.code == "wrong_columns"
    assert "missing columns: score" in error.message and "unexpected columns: height" in error.message
    assert problem(b"a,b\n1,2\n", spec=UNNAMED).code == "wrong_columns"
    assert problem(b"a,a,b\n1,2,3\n", spec=UNNAMED).code == "wrong_columns"
    assert problem(b"a,b\nx,y\n", spec=TEXT).code == "wrong_columns"


@pytest.mark.parametrize("cell", ["abc", "", "nan", "inf", "-Infinity", "1_000", "0x10", "1e999"])
def test_non_numeric_cells_are_refused_with_line_and_column(cell):
    error = problem(f"age,income,score\n1,2,3\n4,{cell},6\n".encode())
    assert error.code == "invalid_batch_file"
    assert error.problems[0].startswith("line 3, column 'income':")


def test_the_first_problems_are_all_reported():
    lines = "\n".join(f"{i},x,1" for i in range(30))
    error = problem(f"age,income,score\n{lines}\n".encode())
    assert len(error.problems) == 10
    assert "(and possibly more)" in error.message


@pytest.mark.parametrize("data,code", [
    (b"", "empty_file"),
    (b"\n\n", "empty_file"),
    (b"age,income,score\n", "empty_file"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not_a_batch_file"),
    (b'age,income,score\n1,"2,3\n', "not_a_batch_file"),
    (b"age,income,score\n1,2\x00,3\n", "not_a_batch_file"),
])
def test_files_that_are_not_usable_csv(data, code):
    assert problem(data).code == code


def test_ragged_rows_and_too_many_rows():
    assert problem(b"age,income,score\n1,2\n").problems == ["line 2: expected 3 cells, got 2"]
    assert problem(b"age,income,score\n" + b"1,2,3\n" * 6, max_rows=5).code == "too_many_rows"
    assert check(b"age,income,score\n" + b"1,2,3\n" * 5, max_rows=5).total_rows == 5


def test_json_lines_objects_lists_and_text():
    data = b'{"age": 1, "income": 2, "score": 3}\n\n{"score": 6, "age": 4, "income": 5.5}\n'
    assert [row.model_input for row in rows(data, fmt=JSONL)] == [[1.0, 2.0, 3.0], [4.0, 5.5, 6.0]]
    assert [row.model_input for row in rows(b"[1, 2, 3]\n", spec=UNNAMED, fmt=JSONL)] == [[1.0, 2.0, 3.0]]
    assert [row.model_input for row in rows(b'"great"\n{"text": "bad"}\n', spec=TEXT, fmt=JSONL)] == ["great", "bad"]
    assert check(data, fmt=JSONL).total_rows == 2


@pytest.mark.parametrize("line,fragment", [
    (b'{"age": 1, "income": 2}', "missing features: score"),
    (b'{"age": 1, "income": 2, "score": 3, "x": 0}', "unknown features: x"),
    (b'{"age": true, "income": 2, "score": 3}', "true is not a number"),
    (b'{"age": "1", "income": 2, "score": 3}', '"1" is not a number'),
    (b'{"age": NaN, "income": 2, "score": 3}', "not valid JSON"),
    (b"[1, 2]", "expected 3 features"),
    (b"7", "expected an object or a list"),
    (b'{"age": 1, "income": 2, "score": 3, "\\udfff": 0}', "\\udfff: A key must not contain a lone UTF-16"),
    (b'{"age": 1, "income": 2, "score": "\\u0000"}', "score: Must not contain the NUL character"),
])
def test_bad_json_lines_are_named(line, fragment):
    error = problem(b'{"age": 1, "income": 2, "score": 3}\n' + line + b"\n", fmt=JSONL)
    assert error.problems[0].startswith("line 2:")
    assert fragment in error.problems[0]


def test_a_first_line_that_is_not_json_means_not_a_json_lines_file():
    assert problem(b"age,income,score\n", fmt=JSONL).code == "not_a_batch_file"
    assert problem(b"[" * 100_000 + b"\n", fmt=JSONL).code == "not_a_batch_file"


def test_the_format_comes_from_the_declaration_the_name_or_the_content():
    assert detect_format("x.bin", b"a,b", "jsonl") == JSONL
    assert detect_format("DATA.CSV", b"{", None) == CSV
    assert detect_format("rows.ndjson", b"a", None) == JSONL
    assert detect_format("upload", b'  {"a": 1}', None) == JSONL
    assert detect_format("upload", b"a,b,c", None) == CSV
    with pytest.raises(BatchFileError):
        detect_format("x", b"", "xlsx")


def test_csv_results_keep_the_input_cells_and_add_predictions_probabilities_and_errors():
    data = b"score,age,income\n1,2,3\n4,5,6\n"
    parsed = rows(data)
    out = io.BytesIO()
    writer = ResultWriter(out, fmt=CSV, columns=["score", "age", "income"], classes=[0, 1])
    writer.header()
    writer.write(parsed, [Outcome(prediction=1, probabilities=[0.25, 0.75]), Outcome(error='bad, "row"')])
    assert out.getvalue().decode().splitlines() == [
        "score,age,income,prediction,probability_0,probability_1,error",
        "1,2,3,1,0.25,0.75,",
        '4,5,6,,,,"bad, ""row"""',
    ]


def test_json_lines_results_carry_the_line_and_the_input():
    parsed = rows(b"[1, 2, 3]\n[4, 5, 6]\n", spec=UNNAMED, fmt=JSONL)
    out = io.BytesIO()
    writer = ResultWriter(out, fmt=JSONL, columns=[], classes=None)
    writer.header()
    writer.write(parsed, [Outcome(prediction=2.5), Outcome(error="nope")])
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {"line": 1, "input": [1, 2, 3], "prediction": 2.5},
        {"line": 2, "input": [4, 5, 6], "error": "nope"},
    ]
