"""The launched app serves its public API as MCP tools (gradio's MCP server), nothing else.

Tools are listed from a launched app through Gradio's MCP schema endpoint and through the MCP
protocol itself (streamable HTTP, the `mcp` client); private and admin events never appear.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

pytest.importorskip("mcp")

PRIVATE_NAMES = ("launch", "stop", "resume", "evaluate_in_page", "check_data", "plan")


def _settings(tmp_path, **mode):
    from vetllm.ui.settings import AppSettings

    return AppSettings(runs_dir=tmp_path / "runs", bootstrap=False, **mode)


def _schema(url: str) -> dict[str, dict]:
    answer = httpx.get(url + "gradio_api/mcp/schema", timeout=30)
    assert answer.status_code == 200, answer.text[:500]
    return {tool["name"]: tool for tool in answer.json()}


@pytest.mark.slow
def test_hosted_app_offers_predict_as_its_only_tool(tmp_path, app_launcher):
    _, url = app_launcher(_settings(tmp_path, hosted=True))
    tools = _schema(url)
    assert sorted(tools) == ["predict"]
    predict = tools["predict"]
    assert "SNOMED-CT" in predict["description"]
    properties = predict["inputSchema"]["properties"]
    assert set(properties) == {"note", "decoding", "run"}
    assert "5,000 characters" in properties["note"]["description"]


@pytest.mark.slow
def test_local_app_adds_codes_check_and_evaluation_but_no_page_events(tmp_path, app_launcher):
    _, url = app_launcher(_settings(tmp_path))
    tools = _schema(url)
    assert {"predict", "check_codes"} <= set(tools)
    assert not any(private in name for name in tools for private in PRIVATE_NAMES)
    assert "Verhoeff" in tools["check_codes"]["description"]


@pytest.mark.slow
def test_mcp_clients_list_and_call_the_tools(tmp_path, app_launcher):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    _, url = app_launcher(_settings(tmp_path))

    async def session_calls():
        async with streamable_http_client(url + "gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                listed = await session.list_tools()
                checked = await session.call_tool("check_codes", {"codes": "72934000, 12345"})
                return listed, checked

    listed, checked = asyncio.run(session_calls())
    assert {"predict", "check_codes"} <= {tool.name for tool in listed.tools}
    text = " ".join(getattr(part, "text", "") for part in checked.content)
    assert "72934000" in text and "Mastitis" in text and "12345" in text
