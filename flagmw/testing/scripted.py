"""ScriptedChatModel: a chat model that answers from a script (tests and examples).

No hosted model is reachable where flagmw is tested, and langchain-core's fake chat
models do not implement ``bind_tools`` (``create_agent`` calls it whenever the agent
has tools). This model does, records which tools were bound at every call, and emits
real tool calls, so agents run end to end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr

__all__ = ["ScriptStep", "ScriptedChatModel", "tool_call"]

#: One answer of a script: a message, a text, or an exception to raise (e.g. to make a
#: route fail and exercise a fallback).
ScriptStep = AIMessage | str | BaseException

#: A policy: (messages so far, names of the tools bound for this call) → one answer.
ScriptPolicy = Callable[[Sequence[BaseMessage], list[str]], ScriptStep]


def tool_call(
    name: str, args: dict[str, Any] | None = None, call_id: str | None = None, content: str = ""
) -> AIMessage:
    """An ``AIMessage`` that calls one tool (``call_id`` defaults to ``call-<name>-<n>``)."""
    tool_call.counter += 1  # type: ignore[attr-defined]
    cid = call_id or f"call-{name}-{tool_call.counter}"  # type: ignore[attr-defined]
    return AIMessage(
        content=content,
        tool_calls=[{"name": name, "args": args or {}, "id": cid, "type": "tool_call"}],
    )


tool_call.counter = 0  # type: ignore[attr-defined]


class ScriptedChatModel(BaseChatModel):
    """A chat model whose answers come from a script.

    Args:
        script: either a list of answers consumed in order (``AIMessage``, text, or an
            exception to raise; the last one repeats when the list runs out), or a
            policy ``(messages, bound_tool_names) -> answer`` called at every turn.
        label: stamped into ``response_metadata["model_name"]`` of every answer, to tell
            routed models apart.

    Attributes:
        seen_tools: the names of the tools bound at each call, in call order.
        calls: the number of calls served.

    Example::

        model = ScriptedChatModel(script=[tool_call("search", {"q": "refund"}), "Done."])
        model.bind_tools([search]).invoke("hi").tool_calls[0]["name"]  # 'search'
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    # typed loosely: pydantic would try to coerce strings into AIMessage
    script: list[Any] | Callable[..., Any]
    label: str = "scripted"
    seen_tools: list[list[str]] = Field(default_factory=list)
    calls: int = 0
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "flagmw-scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"label": self.label}

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> Any:
        """Bind tools like a provider model does (OpenAI tool format)."""
        specs = [t if isinstance(t, dict) else convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=specs, tool_choice=tool_choice, **kwargs)

    def _answer(self, messages: Sequence[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        names = [_tool_name(t) for t in kwargs.get("tools") or []]
        with self._lock:
            self.seen_tools.append(names)
            index = self.calls
            self.calls += 1
        if callable(self.script):
            step = self.script(messages, names)
        else:
            if not self.script:
                raise ValueError("ScriptedChatModel has an empty script")
            step = self.script[min(index, len(self.script) - 1)]
        if isinstance(step, BaseException):
            raise step
        msg = AIMessage(content=step) if isinstance(step, str) else step.model_copy(deep=True)
        msg.response_metadata = {**msg.response_metadata, "model_name": self.label}
        return msg

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages, kwargs))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        msg = self._answer(messages, kwargs)
        text = msg.content if isinstance(msg.content, str) else ""
        words = text.split(" ") if text else [""]
        for i, word in enumerate(words):
            last = i == len(words) - 1
            piece = word if i == 0 else " " + word
            chunk = AIMessageChunk(
                content=piece,
                tool_call_chunks=[
                    {
                        "name": tc["name"],
                        "args": _json(tc["args"]),
                        "id": tc["id"],
                        "index": j,
                        "type": "tool_call_chunk",
                    }
                    for j, tc in enumerate(msg.tool_calls)
                ]
                if last
                else [],
                response_metadata=msg.response_metadata if last else {},
                id=msg.id,
            )
            if run_manager is not None and piece:
                run_manager.on_llm_new_token(piece, chunk=ChatGenerationChunk(message=chunk))
            yield ChatGenerationChunk(message=chunk)


def _tool_name(spec: Any) -> str:
    if isinstance(spec, dict):
        if "function" in spec:
            return str(spec["function"].get("name"))
        return str(spec.get("name") or spec.get("type"))
    return str(getattr(spec, "name", spec))


def _json(args: Any) -> str:
    import json

    return json.dumps(args)
