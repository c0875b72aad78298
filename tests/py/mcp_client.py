"""Talks to qyl's MCP server the way coding assistants do: with the official
`mcp` Python SDK over streamable HTTP, sending the token as a bearer header.

Usage: mcp_client.py URL TOKEN MODE < plan.json
  MODE: `auto` (the current protocol revision, found by probing
  server/discover) or `legacy` (the initialize handshake and a session, as
  older clients do).
  plan.json: {"calls": [{"tool": NAME, "args": {...}}, ...],
              "resource": URI or null,
              "prompts": [{"name": NAME, "args": {...}}, ...]}
Prints JSON: the negotiated protocol version, the server's name, every tool
as listed (name, annotations, whether it has an output schema), the
resources, the start of the resource read, the prompts and the text of each
prompt asked for, and for each call either the result (isError, text,
structuredContent) or the protocol error.
"""

import asyncio
import json
import sys

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import Implementation


async def main():
    url, token, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    plan = json.load(sys.stdin)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = create_mcp_http_client(headers=headers)
    out = {}
    async with http:
        transport = streamable_http_client(url, http_client=http)
        # A name of its own, as Claude Code or Cursor send theirs: qyl
        # signs notes with it.
        me = Implementation(name="qyl-tests", version="1.0")
        async with Client(transport, mode=mode, cache=None, client_info=me) as client:
            out["protocol_version"] = client.protocol_version
            info = client.server_info
            out["server_name"] = info.name if info else None
            out["instructions"] = client.instructions
            listed = await client.list_tools()
            out["tools"] = [
                {
                    "name": t.name,
                    "annotations": t.annotations.model_dump(by_alias=True, exclude_none=True)
                    if t.annotations
                    else None,
                    "has_output_schema": t.output_schema is not None,
                    "input_properties": sorted((t.input_schema or {}).get("properties", {}).keys()),
                }
                for t in listed.tools
            ]
            resources = await client.list_resources()
            out["resources"] = [str(r.uri) for r in resources.resources]
            if plan.get("resource"):
                read = await client.read_resource(plan["resource"])
                out["resource_text"] = read.contents[0].text[:2000]
            listed_prompts = await client.list_prompts()
            out["prompts"] = sorted(p.name for p in listed_prompts.prompts)
            out["prompt_texts"] = []
            for p in plan.get("prompts") or []:
                got = await client.get_prompt(p["name"], p.get("args") or {})
                out["prompt_texts"].append("\n".join(m.content.text for m in got.messages))
            results = []
            for call in plan["calls"]:
                try:
                    r = await client.call_tool(call["tool"], call.get("args") or {})
                    results.append(
                        {
                            "tool": call["tool"],
                            "is_error": bool(r.is_error),
                            "text": "\n".join(
                                c.text for c in r.content if getattr(c, "type", "") == "text"
                            ),
                            "structured": r.structured_content,
                        }
                    )
                except MCPError as e:
                    results.append(
                        {"tool": call["tool"], "protocol_error": {"code": e.code, "message": e.message}}
                    )
            out["results"] = results
    print(json.dumps(out))


asyncio.run(main())
