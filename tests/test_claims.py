"""The documents' claims table (issue 15: "a claims table (document, claim, lab, tests) is generated from
the suites' markers ... A test in tests/ fails if a marker names a lab or document that does not exist").

- Every document marker of the suites names one of the five documents, and every lab its test builds is
  in harness/lab/data; the twin, a suite naming document 007 and lab 000-no-such-lab, is refused.
- A test's labs are found however the suites build them (a lab fixture, a case's fixture name, an
  indirect lab name, an f-string fixture name, a module constant, a fixture of the module, a literal).
- A claim's 「quote」 is in its document (whitespace and markdown emphasis aside); the twin quotes the
  text issue 15 found in a marker and no document holds.
- Each deviation a lab's summary states is in README's table of them, and each row's labs state it.
"""
from __future__ import annotations

import itertools
import os
import re
import textwrap

import pytest

from harness import cli
from harness.errors import NetconformError
from harness.lab import claims

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCUMENTS = claims.documents_folder()
needs_documents = pytest.mark.skipif(not claims.document_texts(), reason=f"the seed documents are not at "
                                     f"{os.path.abspath(DOCUMENTS)} (NETCONFORM_DOCUMENTS)")


def suite(tmp_path, source: str) -> list[claims.Claim]:
    (tmp_path / "test_made_up.py").write_text(textwrap.dedent(source), encoding="utf-8")
    return claims.claims(str(tmp_path))


def test_every_claim_names_a_document_and_labs_that_exist():
    found = claims.claims()
    assert claims.unknown(found) == []
    assert len(found) > 100 and {c.document for c in found} == set(claims.DOCUMENTS), \
        sorted({c.document for c in found})  # each document has claims
    # Only the bare namespaces' claims are made without a lab, and the two-host Flannel suite's: its lab is
    # two VMs programmed by harness/vm/flannel_node.py, not a lab file.
    without = ("test_namespaces.py", "test_flannel_two_hosts.py")
    assert all(c.labs for c in found if not c.test.startswith(without)), [c.test for c in found if not c.labs]


def test_a_made_up_document_or_lab_is_refused(tmp_path):
    found = suite(tmp_path, '''
        import pytest
        from pytest_netconform import lab_fixture
        ghost = lab_fixture("000-no-such-lab")

        @pytest.mark.document("007", "a document nobody wrote")
        def test_a(ghost):
            pass

        @pytest.mark.document("001", "step2")
        def test_b(request):
            request.getfixturevalue("ghost")
    ''')
    assert claims.unknown(found) == [
        "test_made_up.py::test_b line 10: lab '000-no-such-lab' is not in harness/lab/data",
        "test_made_up.py::test_a line 6: document '007' is not one of 000, 001, 002, 003, 004",
        "test_made_up.py::test_a line 6: lab '000-no-such-lab' is not in harness/lab/data"]
    with pytest.raises(NetconformError, match=r"test_b line 10: lab '000-no-such-lab' is not in harness/lab/data "
                                              r"\(3 such\)"):
        claims.text(found)


def test_a_tests_labs_are_found_however_the_suite_builds_them(tmp_path):
    found = suite(tmp_path, '''
        import pytest
        from pytest_netconform import lab_fixture
        from pytest_netconform.labs import build_for
        lpm = lab_fixture("000-lpm")
        docker_iptables = lab_fixture("004-docker-nat")
        docker_nftables = lab_fixture("004-docker-nat-nft")
        PINGS = {"002-br0": [], "003-example1": []}

        @pytest.fixture(params=["iptables", "nftables"])
        def docker(request):
            return request.getfixturevalue(f"docker_{request.param}")

        @pytest.fixture
        def lab(request):
            return build_for(request, request.param)

        @pytest.mark.document("000", "as a fixture")
        def test_fixture(lpm):
            pass

        @pytest.mark.parametrize("name", [
            pytest.param("lpm", id="one", marks=pytest.mark.document("000", "a case's own")),
            pytest.param("docker_nftables", marks=pytest.mark.document("004", "another case's own")),
        ])
        def test_cases(request, name):
            request.getfixturevalue(name)

        @pytest.mark.document("004", "through a fixture of the module")
        def test_docker(docker):
            pass

        @pytest.mark.document("002", "a constant's keys, indirect")
        @pytest.mark.parametrize("lab", sorted(PINGS), indirect=True)
        def test_pings(lab):
            pass

        @pytest.mark.document("004", "a literal")
        def test_variant(request):
            build_for(request, "004-flannel-vxlan", None)

        @pytest.mark.document("001", "no lab")
        def test_bare():
            pass
    ''')
    assert [(c.test, c.labs) for c in found] == [
        ("test_made_up.py::test_cases[one]", ("000-lpm",)),
        ("test_made_up.py::test_fixture", ("000-lpm",)),
        ("test_made_up.py::test_bare", ()),
        ("test_made_up.py::test_pings", ("002-br0", "003-example1")),
        ("test_made_up.py::test_cases[docker_nftables]", ("004-docker-nat-nft",)),
        ("test_made_up.py::test_docker", ("004-docker-nat", "004-docker-nat-nft")),
        ("test_made_up.py::test_variant", ("004-flannel-vxlan",)),
    ]
    rows = claims.text(found).splitlines()
    assert "001\tno lab\t-\ttest_made_up.py::test_bare" in rows, rows
    assert "004\tthrough a fixture of the module\t004-docker-nat, 004-docker-nat-nft\ttest_made_up.py::test_docker" \
        in rows, rows


def test_a_marker_that_is_not_two_literals_is_one_line(tmp_path):
    with pytest.raises(NetconformError, match=r"test_made_up.py::test_a line 3: pytest.mark.document takes two"):
        suite(tmp_path, '''
            import pytest
            @pytest.mark.document("000", CLAIM)
            def test_a():
                pass
        ''')


def test_lab_claims_prints_the_suites_table(capsys):
    assert cli.main(["lab", "claims"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines() if line.count("\t") == 3]
    lpm = [row for row in rows if "test_routing.py::test_the_longest_matching_prefix_picks_the_exit" in row[3]]
    assert [(row[0], row[2]) for row in lpm] == [("000", "000-lpm")] and "最长前缀匹配" in lpm[0][1], lpm


@needs_documents
def test_the_five_documents_are_the_seeds():
    texts = claims.document_texts()
    assert sorted(texts) == sorted(claims.DOCUMENTS), sorted(texts)


@needs_documents
def test_every_quote_is_in_its_document():
    found = claims.claims()
    assert sum(len(claims.QUOTE.findall(c.claim)) for c in found) > 50
    assert claims.misquoted(found, claims.document_texts()) == []


@needs_documents
def test_a_quote_the_document_does_not_hold_is_refused():
    texts = claims.document_texts()
    quoted = [claims.Claim("004", "Flannel: 「FLANNEL_MTU=1450 (VXLAN 封装 50 字节)」", (), "test_x.py::test_mtu", 1),
              claims.Claim("004", "Flannel: 「# FLANNEL_MTU=1472」", (), "test_x.py::test_udp", 2),
              claims.Claim("000", "工作机制: 「2. 转发 - 根据目标 MAC 查找出端口」 (markdown **转发**)", (), "test_x.py::test_fwd", 3),
              claims.Claim("000", "「hairpin」 (000 has none)", (), "test_x.py::test_hairpin", 4)]
    assert claims.misquoted(quoted, texts) == [
        "test_x.py::test_mtu line 1: document 004 does not say 「FLANNEL_MTU=1450 (VXLAN 封装 50 字节)」",
        "test_x.py::test_hairpin line 4: document 000 does not say 「hairpin」"]


def undeclared(readme: str) -> list[str]:
    """Where README's table of deviations and the labs' summaries ("Departs from the document: ...")
    disagree: a row for a lab whose summary states none, or a lab stating one that has no row (lo, the
    every-lab row's, excepted)."""
    from harness.lab.file import bundled_labs, load_lab
    header = readme.index("| lab | departs from the document | checked instead |")
    rows = list(itertools.takewhile(lambda line: line.startswith("|"), readme[header:].splitlines()[2:]))
    listed = {lab.strip(): row for row in rows for lab in row.split("|")[1].split(",")}
    departs = {}
    for name in bundled_labs():
        summary = " ".join((load_lab(name).summary or "").split())
        if "Departs from the document" in summary:
            departs[name] = summary.split("Departs from the document", 1)[1]
    problems = [f"README's row for {lab} states a deviation its summary does not" for lab in listed
                if lab != "every lab" and lab not in departs]
    problems += [f"{lab} states a deviation README's table does not list" for lab, text in departs.items()
                 if lab not in listed and not (re.match(r": lo is up in", text) and "every lab" in listed)]
    return problems


def test_each_deviation_is_stated_in_its_lab_and_in_the_readme():
    with open(os.path.join(PROJECT, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    assert undeclared(readme) == []
    without = re.sub(r"\n\| 000-lpm \|[^\n]*", "", readme)
    assert undeclared(without) == ["000-lpm states a deviation README's table does not list"]
    made_up = readme.replace("| 000-bridge-abc |", "| 000-bridge-abc, 003-example1 |")
    assert undeclared(made_up) == ["README's row for 003-example1 states a deviation its summary does not"]
