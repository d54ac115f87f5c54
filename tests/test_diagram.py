"""The architecture diagram in docs/architecture.md is the one the stack generates now."""
from tools.diagram import END, PAGE, START, current, diagram_in, mermaid, page_with


def test_diagram_is_not_stale():
    assert diagram_in(PAGE.read_text()) == current(), "docs/architecture.md's diagram is stale: run `make diagram`"


def test_the_staleness_check_sees_a_changed_diagram():
    page = page_with("flowchart LR\n  a --> b\n", f"intro\n{START}\nold\n{END}\nrest\n")
    assert page.startswith("intro\n") and page.endswith(f"{END}\nrest\n"), "text around the markers kept"
    assert diagram_in(page) == "flowchart LR\n  a --> b\n"
    assert diagram_in(page) != "flowchart LR\n  a --> c\n"


def test_diagram_shows_modules_resources_and_references():
    stack = {"resource": {
        "aws_vpc": {"main": {"cidr_block": "10.0.0.0/16"}},
        "aws_subnet": {"public": {"vpc_id": "${aws_vpc.main.id}", "count": 2}},
    }}
    text = mermaid(stack, {"aws_vpc.main": "networking", "aws_subnet.public": "networking"})
    assert "subgraph networking" in text
    assert 'aws_subnet_public["aws_subnet.public"]' in text
    assert "aws_subnet_public --> aws_vpc_main" in text


def test_a_new_resource_makes_the_diagram_differ():
    base = {"resource": {"aws_vpc": {"main": {}}}}
    grown = {"resource": {"aws_vpc": {"main": {}}, "aws_eip": {"x": {}}}}
    mods = {"aws_vpc.main": "networking", "aws_eip.x": "networking"}
    assert mermaid(base, mods) != mermaid(grown, mods)
