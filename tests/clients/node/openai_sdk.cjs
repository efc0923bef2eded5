// The official OpenAI SDK for Node against BASE_URL, in one of two modes (argv[2]):
// "chat": chat.completions.create, chat.completions.stream().finalChatCompletion(), a tool round
// trip; "responses": responses.create, responses.stream().finalResponse(), a function-call round
// trip. Prints a JSON report; exits 1 (with the error) when a call fails or an answer lacks what
// the SDK should have parsed.
"use strict";
const OpenAI = require("openai").default;
const assert = require("node:assert/strict");

const { BASE_URL, API_KEY, MODEL, TRIGGER, TOOL_RESULT } = process.env;
const client = new OpenAI({ baseURL: BASE_URL, apiKey: API_KEY, maxRetries: 0, timeout: 30000 });
const parameters = { type: "object", properties: { city: { type: "string" } }, required: ["city"] };
const question = `${TRIGGER}: what is the weather in Paris?`;

async function chat() {
  const report = {};
  const tools = [{ type: "function", function: { name: "get_weather", description: "The current weather of a city.", parameters } }];
  const created = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Say OK." }] });
  report.create = { text: created.choices[0].message.content, finish_reason: created.choices[0].finish_reason, usage: created.usage };

  const deltas = [];
  const stream = client.chat.completions.stream({
    model: MODEL, messages: [{ role: "user", content: "Say OK again." }], stream_options: { include_usage: true },
  });
  stream.on("content", (delta) => deltas.push(delta));
  const streamed = await stream.finalChatCompletion();
  report.stream = { text: streamed.choices[0].message.content, deltas: deltas.join(""), usage: streamed.usage };

  const messages = [{ role: "user", content: question }];
  const first = await client.chat.completions.stream({ model: MODEL, messages, tools }).finalChatCompletion();
  const message = first.choices[0].message;
  const call = (message.tool_calls || [])[0];
  assert.ok(call, `no tool call in ${JSON.stringify(message)}`);
  const second = await client.chat.completions.create({
    model: MODEL, tools,
    messages: [...messages, { role: "assistant", content: message.content, tool_calls: message.tool_calls },
      { role: "tool", tool_call_id: call.id, content: TOOL_RESULT }],
  });
  report.tools = {
    finish_reason: first.choices[0].finish_reason,
    call: { id: call.id, name: call.function.name, arguments: JSON.parse(call.function.arguments) },
    final: second.choices[0].message.content,
  };
  return report;
}

async function responses() {
  const report = {};
  const tools = [{ type: "function", name: "get_weather", description: "The current weather of a city.", parameters, strict: false }];
  const created = await client.responses.create({ model: MODEL, input: "Say OK." });
  report.create = { text: created.output_text, status: created.status, usage: created.usage };

  const deltas = [];
  const stream = client.responses.stream({ model: MODEL, input: "Say OK again." });
  stream.on("response.output_text.delta", (event) => deltas.push(event.delta));
  const streamed = await stream.finalResponse();
  report.stream = { text: streamed.output_text, deltas: deltas.join(""), status: streamed.status };

  const input = [{ role: "user", content: question }];
  const first = await client.responses.stream({ model: MODEL, input, tools }).finalResponse();
  const call = first.output.find((item) => item.type === "function_call");
  assert.ok(call, `no function_call item in ${JSON.stringify(first.output)}`);
  const second = await client.responses.create({
    model: MODEL, tools,
    input: [...input, ...first.output, { type: "function_call_output", call_id: call.call_id, output: TOOL_RESULT }],
  });
  report.tools = {
    status: first.status, call: { id: call.call_id, name: call.name, arguments: JSON.parse(call.arguments) },
    final: second.output_text,
  };
  return report;
}

const modes = { chat, responses };
const mode = modes[process.argv[2]];
if (!mode) {
  process.stderr.write(`usage: openai_sdk.cjs chat|responses\n`);
  process.exit(2);
}
mode().then(
  (report) => process.stdout.write(JSON.stringify(report) + "\n"),
  (error) => { process.stderr.write(`${error.stack || error}\n`); process.exit(1); },
);
