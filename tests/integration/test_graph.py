"""Connected components on graphs with known answers, against a plain union-find."""

import random

import pytest

from instructlake.graph.components import connected_components, graphframes_available


def union_find(edges, vertices):
    parent = {v: v for v in vertices}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    comps = {}
    for v in vertices:
        comps.setdefault(find(v), []).append(v)
    return {v: min(members) for members in comps.values() for v in members}


def run(spark, edges, vertices, engine="spark", partitions=4):
    e = spark.createDataFrame(edges or [("_", "_")], "src string, dst string").filter("src <> '_'")
    v = spark.createDataFrame([(x,) for x in vertices], "id string")
    out = connected_components(spark, e.repartition(partitions), v.repartition(partitions), engine)
    return {r["id"]: r["component"] for r in out.collect()}


def name(i):
    return f"v{i:04d}"


GRAPHS = {
    "chain": ([(name(i), name(i + 1)) for i in range(30)], [name(i) for i in range(31)]),
    "reversed chain": ([(name(i + 1), name(i)) for i in range(30)][::-1], [name(i) for i in range(31)]),
    "star": ([(name(50), name(i)) for i in range(50)], [name(i) for i in range(51)]),
    "cycle": ([(name(i), name((i + 1) % 12)) for i in range(12)], [name(i) for i in range(12)]),
    "singletons": ([], [name(i) for i in range(5)]),
    "mixed": ([(name(1), name(2)), (name(3), name(4)), (name(4), name(5)), (name(9), name(8))],
              [name(i) for i in range(10)]),
}


@pytest.mark.parametrize("engine", ["spark", "driver"])
@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_known_graphs(spark, graph, engine):
    edges, vertices = GRAPHS[graph]
    assert run(spark, edges, vertices, engine) == union_find(edges, vertices)


def test_random_graph_any_partitioning(spark):
    rng = random.Random(5)
    vertices = [name(i) for i in range(400)]
    edges = [(rng.choice(vertices), rng.choice(vertices)) for _ in range(300)]
    expected = union_find(edges, vertices)
    assert run(spark, edges, vertices, partitions=1) == expected
    assert run(spark, edges, vertices, partitions=7) == expected
    assert run(spark, edges, vertices, "driver", partitions=7) == expected
    assert run(spark, edges, vertices, "auto") == expected


def test_graphframes_agrees_with_spark_native(spark):
    if not graphframes_available(spark):
        pytest.skip("GraphFrames JARs not on the classpath (setup could not fetch them)")
    rng = random.Random(9)
    vertices = [name(i) for i in range(200)]
    edges = [(rng.choice(vertices), rng.choice(vertices)) for _ in range(150)]
    assert run(spark, edges, vertices, "graphframes") == run(spark, edges, vertices, "spark")
