"""The report a person reads: a deliberately failing run rendered by Allure 3, opened in
real headless Chromium (Debian's, driven by Playwright), must show the suites, and for
the failing test its picture, pcap, state dump and reproducer; the pcap must open in
tshark. A screenshot is kept in reports/.
"""
import functools
import glob
import http.server
import json
import os
import shutil
import socketserver
import subprocess
import sys
import threading

import pytest

from harness.evidence.matrix import allure_cli, matrix, render_html

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = "/usr/bin/chromium"
TOOLS = os.path.join(PROJECT, ".tools")
FAILING = "test_first_frame_from_a_learns_a_on_its_port"
PASSING = "test_each_ports_own_mac_is_a_local_entry"


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory):
    """Allure results of a run where the fault plugin breaks bridge learning: one failure, one pass."""
    results = tmp_path_factory.mktemp("allure-results")
    env = dict(os.environ, PYTHONPATH=os.path.join(PROJECT, "tests", "plugins"))
    done = subprocess.run([sys.executable, "-m", "pytest", "suites/test_bridge.py", "-q", "-p", "no:cacheprovider",
                           "-p", "netconform_fault_demo", "-k", f"{FAILING} or {PASSING}",
                           f"--alluredir={results}", f"--basetemp={tmp_path_factory.mktemp('run')}"],
                          cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "1 failed, 1 passed" in done.stdout, done.stdout[-2000:]
    return str(results)


def test_results_carry_labels_steps_and_evidence(failing_run):
    table = matrix(failing_run)
    assert table["bridge"]["failed"] == 1 and table["bridge"]["passed"] == 1, table  # the suite's area marker
    for path in glob.glob(os.path.join(failing_run, "*-result.json")):
        with open(path, encoding="utf-8") as handle:
            labels = {label["name"]: label["value"] for label in json.load(handle)["labels"]}
        assert "severity" not in labels, f"a severity no marker claimed: {labels}"
    assert os.path.exists(os.path.join(failing_run, "environment.properties"))
    assert os.path.exists(os.path.join(failing_run, "categories.json"))


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (apt-get install tshark)")
def test_the_pcap_attachment_opens_in_tshark(failing_run):
    captures = glob.glob(os.path.join(failing_run, "*-attachment.pcap*"))
    assert captures, "no pcapng attachment in the results"
    frames = []
    for capture in captures:
        done = subprocess.run(["tshark", "-r", capture, "-T", "fields", "-e", "frame.interface_name",
                               "-e", "eth.src"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        frames += done.stdout.splitlines()
    assert any(line.startswith("container-a/eth0\t02:00:00:00:aa:aa") for line in frames), frames[:10]


@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="Debian's chromium is not installed")
@pytest.mark.skipif(allure_cli(TOOLS) is None, reason="Allure 3 is not installed (make check installs it)")
def test_the_html_report_shows_the_failing_tests_evidence_in_chromium(failing_run, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    index = render_html(failing_run, str(tmp_path / "html"), TOOLS)
    handler = functools.partial(_QuietHandler, directory=os.path.dirname(index))
    with socketserver.TCPServer(("127.0.0.1", 0), handler) as server:  # loopback of the sandbox
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with playwright.sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=CHROMIUM, args=[
                    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run"])
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 1800})
                    page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
                    page.wait_for_load_state("networkidle")
                    body = page.inner_text("body")
                    assert "test_bridge.py" in body and "each ports own mac is a local entry" in body, body[:2000]
                    page.get_by_text("first frame from a learns a on its port").first.click()
                    page.get_by_text("state of 000-bridge-abc at failure").first.wait_for(timeout=10_000)
                    body = page.inner_text("body")
                    for evidence in ("probes in 000-bridge-abc.pcapng", "state of 000-bridge-abc at failure",
                                     "reproducer for 000-bridge-abc.sh", "aa:aa not learned"):
                        assert evidence in body, f"{evidence!r} missing from the failing test's page"
                    page.get_by_text("bridge_abc").first.click()  # the lab's set-up step holds the picture
                    page.get_by_text("topology of 000-bridge-abc").first.wait_for(timeout=10_000)
                    page.get_by_text("topology of 000-bridge-abc").first.click()
                    picture = page.locator("img[src*='svg'], img[src^='data:image/svg'], svg").first
                    picture.wait_for(timeout=10_000)
                    os.makedirs(os.path.join(PROJECT, "reports"), exist_ok=True)
                    page.screenshot(path=os.path.join(PROJECT, "reports", "report-selftest.png"), full_page=True)
                finally:
                    browser.close()
        finally:
            server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
