"""The architecture diagram in docs/ and README is the one the stack generates now."""
from tools.diagram import END, MMD, README, START, current, mermaid


def test_diagram_is_not_stale():
    diagram = current()
    assert MMD.read_text() == diagram, "docs/architecture.mmd is stale: run `make diagram`"
    readme = README.read_text()
    block = readme.split(START, 1)[1].split(END, 1)[0]
    assert block == f"\n```mermaid\n{diagram}```\n", "README diagram is stale: run `make diagram`"


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
