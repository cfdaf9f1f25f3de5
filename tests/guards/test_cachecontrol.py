"""Operation cache policies from @cacheControl (Apollo's rules) and the static tags of a document."""

from __future__ import annotations

import pytest
from graphql import parse
from hypothesis import given, settings
from hypothesis import strategies as st

from guards.cachecontrol import CacheControl, CachePolicy

SDL = """
type Query {
  items(first: Int): ItemConnection! @cacheControl(maxAge: 60)
  item(id: ID!): Item @cacheControl(maxAge: 120)
  many(ids: [ID!]!): [Node]! @cacheControl(maxAge: 90)
  me: Person! @cacheControl(maxAge: 30, scope: PRIVATE)
  bare: Item
  clock: String
  short: Int @cacheControl(maxAge: 5)
}
type Mutation { touch(id: ID!): Item @cacheControl(maxAge: 60) }
interface Node { id: ID! }
type Item implements Node @cacheControl(maxAge: 300) {
  id: ID!
  name: String!
  owner: Person!
  secret: String @cacheControl(scope: PRIVATE)
  tags: [Tag!]!
  inherited: Tag @cacheControl(inheritMaxAge: true)
  price: Money!
  friends(first: Int): PersonConnection! @cacheControl(maxAge: 100)
}
type Person implements Node { id: ID!, name: String! }
type PersonConnection { nodes: [Person!]!, edges: [PersonEdge!]!, totalCount: Int! }
type PersonEdge { node: Person! }
type Tag @cacheControl(maxAge: 45) { label: String! }
type Money @cacheControl(inheritMaxAge: true) { amount: Int! }
type ItemConnection { nodes: [Item!]!, totalCount: Int! }
"""


@pytest.fixture(scope="module")
def control() -> CacheControl:
    return CacheControl.from_sdl(SDL)


def policy(control: CacheControl, text: str) -> CachePolicy:
    return control.analyse(parse(text), None).policy


def test_root_field_hints_and_the_smallest_max_age(control: CacheControl) -> None:
    assert policy(control, "{ item(id: 1) { id name } }") == CachePolicy(120, "PUBLIC")
    # Item's type hint (300) does not lower the field's own 120; short's 5 wins overall.
    assert policy(control, "{ item(id: 1) { id } short }") == CachePolicy(5, "PUBLIC")
    assert policy(control, "{ items { nodes { id tags { label } } } }").max_age == 45


def test_a_root_field_without_a_hint_is_never_cached(control: CacheControl) -> None:
    info = control.analyse(parse("{ item(id: 1) { id } clock }"), None)
    assert info.policy.max_age == 0 and "Query.clock" in (info.reason or "")
    assert policy(control, "{ bare { id } }").max_age == 300  # the return type's hint applies


def test_composite_fields_without_hints_are_not_cached(control: CacheControl) -> None:
    # Person has no hint: a composite field returning it defaults to 0.
    info = control.analyse(parse("{ item(id: 1) { owner { name } } }"), None)
    assert info.policy.max_age == 0


def test_inherit_max_age_takes_the_parent_s(control: CacheControl) -> None:
    assert policy(control, "{ item(id: 1) { id price { amount } } }").max_age == 120
    assert policy(control, "{ item(id: 1) { id inherited { label } } }").max_age == 120


def test_private_wins(control: CacheControl) -> None:
    assert policy(control, "{ item(id: 1) { id secret } }") == CachePolicy(120, "PRIVATE")
    assert policy(control, "{ me { id name } item(id: 1) { id } }") == CachePolicy(30, "PRIVATE")


def test_mutations_and_introspection_are_never_cached(control: CacheControl) -> None:
    assert control.analyse(parse('mutation { touch(id: "1") { id } }'), None).reason == "mutation"
    assert policy(control, "{ item(id: 1) { id } __schema { queryType { name } } }").max_age == 0
    assert policy(control, "{ __typename }").max_age == 0


def test_fragments_are_followed(control: CacheControl) -> None:
    text = """
    query Q { ...Root }
    fragment Root on Query { item(id: "x") { ...Fields } }
    fragment Fields on Item { id secret tags { label } }
    """
    info = control.analyse(parse(text), "Q")
    assert info.policy == CachePolicy(45, "PRIVATE")
    assert info.id_literals == ("x",)


def test_static_tags_lists_id_less_entities_and_id_arguments(control: CacheControl) -> None:
    info = control.analyse(
        parse(
            "query($i: ID!, $j: ID!) { items { totalCount } bare { name } item(id: $i) { name } "
            'many(ids: [$j, "lit"]) { id } }'
        ),
        None,
    )
    # The connection is a list of Items; bare shows an Item without its id (item(id:) is
    # named by its argument); Node's possible types are listed by many, with their ids.
    assert {"Item:list", "Item", "Person:list"} <= info.tags
    assert "Person" not in info.tags
    assert info.id_variables == ("i", "j") and info.id_literals == ("lit",)
    looked_up = control.analyse(parse('{ item(id: "x") { name owner { id } } }'), None)
    assert "Item" not in looked_up.tags and looked_up.id_literals == ("x",)


def test_an_aliased_or_conditional_id_does_not_count(control: CacheControl) -> None:
    aliased = control.analyse(parse("{ bare { key: id } }"), None)
    skipped = control.analyse(parse("query($s: Boolean!) { bare { id @skip(if: $s) } }"), None)
    plain = control.analyse(parse("{ bare { id } }"), None)
    assert "Item" in aliased.tags and "Item" in skipped.tags and "Item" not in plain.tags


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "short",
                "item(id: 1) { id }",
                "me { id }",
                "items { totalCount }",
                "item(id: 2) { id tags { label } }",
            ]
        ),
        min_size=1,
        max_size=5,
    )
)
def test_the_policy_is_the_minimum_over_root_fields(
    control: CacheControl, fields: list[str]
) -> None:
    ages = {
        "short": 5,
        "item(id: 1) { id }": 120,
        "me { id }": 30,
        "items { totalCount }": 60,
        "item(id: 2) { id tags { label } }": 45,
    }
    aliased = " ".join(f"a{i}: {f}" for i, f in enumerate(fields))
    found = policy(control, "{ " + aliased + " }")
    assert found.max_age == min(ages[f] for f in fields)
    assert (found.scope == "PRIVATE") == ("me { id }" in fields)


def test_an_interface_takes_its_possible_types_hints() -> None:
    control = CacheControl.from_sdl(
        """
        type Query { node(id: ID!): Node @cacheControl(maxAge: 60) }
        interface Node { id: ID! }
        type Open implements Node @cacheControl(maxAge: 30) { id: ID!, a: Int }
        type Mine implements Node @cacheControl(maxAge: 20, scope: PRIVATE) { id: ID!, b: Int }
        """
    )
    found = policy(control, '{ node(id: "x") { ... on Open { a } } }')
    # The field's own 60 stands, but Mine may be returned: PRIVATE wins.
    assert found == CachePolicy(60, "PRIVATE")
    bare = CacheControl.from_sdl(
        """
        type Query { node(id: ID!): Node }
        interface Node { id: ID! }
        type Open implements Node @cacheControl(maxAge: 30) { id: ID! }
        type Mine implements Node @cacheControl(maxAge: 20, scope: PRIVATE) { id: ID! }
        """
    )
    assert policy(bare, '{ node(id: "x") { id } }') == CachePolicy(20, "PRIVATE")


def test_a_list_under_an_identified_entity_is_its_parent_s(control: CacheControl) -> None:
    """A write to such a list invalidates the parent's own tag, read from the data."""
    anchored = control.analyse(
        parse("{ bare { id friends { totalCount edges { node { id } } } } }"), None
    )
    assert "Person:list" not in anchored.tags and "Item" not in anchored.tags
    loose = control.analyse(parse("{ bare { name friends { nodes { id } } } }"), None)
    assert {"Person:list", "Item"} <= loose.tags
    by_argument = control.analyse(parse('{ item(id: "x") { friends { nodes { id } } } }'), None)
    assert "Person:list" not in by_argument.tags
    under_a_list = control.analyse(
        parse("{ items { nodes { id friends { nodes { name } } } } }"), None
    )
    assert "Item:list" in under_a_list.tags and "Person:list" not in under_a_list.tags
    assert "Person" in under_a_list.tags  # shown without their ids
