import pyarrow as pa
import pytest
from pyspark.sql.types import ArrayType, BinaryType

from cytolake.schemas import schema, table_names

TABLES = ["areas", "brains", "features", "graph_edges", "graph_meshes", "graph_nodes", "metrics", "patches", "pmaps",
          "predictions", "sections"]


def test_every_table_has_a_schema():
    assert table_names() == TABLES


@pytest.mark.parametrize("name", TABLES)
def test_arrow_and_spark_agree(name):
    ts = schema(name)
    arrow, spark = ts.arrow(), ts.spark()
    assert arrow.names == [f.name for f in spark.fields] == ts.names
    for a, s in zip(arrow, spark.fields):
        assert a.nullable == s.nullable, a.name
        assert pa.types.is_list(a.type) == isinstance(s.dataType, ArrayType), a.name
    assert set(ts.key) <= set(ts.names) and set(ts.partition_by) <= set(ts.names)


@pytest.mark.parametrize("name", TABLES)
def test_keys_first_big_columns_last(name):
    ts = schema(name)
    assert ts.names[: len(ts.key)] == list(ts.key)
    big = [i for i, f in enumerate(ts.spark().fields) if isinstance(f.dataType, (ArrayType, BinaryType))]
    assert big == list(range(len(ts.names) - len(big), len(ts.names))), f"{name}: arrays/binary must come last"


def test_unknown_table_is_an_error():
    with pytest.raises(KeyError):
        schema("patchez")
