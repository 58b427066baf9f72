"""spark-defaults.conf as setup writes it: a user's own lines survive, ours are replaced, stably."""

from instructlake.submit_defaults import MARK, render

OURS = {"spark.jars": "/a.jar,/b.jar", "spark.pyspark.python": "/venv/bin/python"}


def test_a_new_file_holds_the_mark_and_our_keys():
    text = render("", OURS)
    assert text.splitlines() == [MARK, "spark.jars /a.jar,/b.jar", "spark.pyspark.python /venv/bin/python"]


def test_user_lines_are_kept_and_our_keys_replaced():
    mine = "# my cluster\nspark.executor.memory 8g\nspark.jars /old.jar\n\n"
    first = render(mine, OURS)
    assert first.startswith("# my cluster\nspark.executor.memory 8g\n\n" + MARK)
    assert "/old.jar" not in first and first.count("spark.jars") == 1
    again = render(first, {**OURS, "spark.jars": "/c.jar"})
    assert "spark.executor.memory 8g" in again and again.count(MARK) == 1
    assert "spark.jars /c.jar" in again and "/a.jar" not in again
    assert render(again, {**OURS, "spark.jars": "/c.jar"}) == again
