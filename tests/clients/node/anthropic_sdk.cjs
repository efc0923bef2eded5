// The official Anthropic SDK for Node against BASE_URL (the fake Anthropic upstream, or the
// gateway): messages.create, messages.stream().finalMessage(), a tool round trip (streamed
// tool_use, then the tool_result), and messages.countTokens. Prints a JSON report; exits 1
// (with the error) when a call fails or an answer lacks what the SDK should have parsed.
"use strict";
const Anthropic = require("@anthropic-ai/sdk").default;
const assert = require("node:assert/strict");

const { BASE_URL, API_KEY, MODEL, TRIGGER, TOOL_RESULT } = process.env;
const client = new Anthropic({ baseURL: BASE_URL, apiKey: API_KEY, maxRetries: 0, timeout: 30000 });
const weather = {
  name: "get_weather",
  description: "The current weather of a city.",
  input_schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
};
const text = (message) => message.content.filter((b) => b.type === "text").map((b) => b.text).join("");

async function main() {
  const report = {};
  const created = await client.messages.create({
    model: MODEL, max_tokens: 64, messages: [{ role: "user", content: "Say OK." }],
  });
  assert.equal(created.type, "message");
  report.create = { text: text(created), stop_reason: created.stop_reason, usage: created.usage };

  const deltas = [];
  const stream = client.messages.stream({
    model: MODEL, max_tokens: 64, messages: [{ role: "user", content: "Say OK again." }],
  });
  stream.on("text", (delta) => deltas.push(delta));
  const streamed = await stream.finalMessage();
  report.stream = { text: text(streamed), deltas: deltas.join(""), stop_reason: streamed.stop_reason };

  const question = { role: "user", content: `${TRIGGER}: what is the weather in Paris?` };
  const first = await client.messages
    .stream({ model: MODEL, max_tokens: 256, tools: [weather], messages: [question] })
    .finalMessage();
  const call = first.content.find((b) => b.type === "tool_use");
  assert.ok(call, `no tool_use block in ${JSON.stringify(first.content)}`);
  const second = await client.messages.create({
    model: MODEL, max_tokens: 256, tools: [weather],
    messages: [
      question,
      { role: "assistant", content: first.content },
      { role: "user", content: [{ type: "tool_result", tool_use_id: call.id, content: TOOL_RESULT }] },
    ],
  });
  report.tools = {
    stop_reason: first.stop_reason, call: { id: call.id, name: call.name, input: call.input },
    final: text(second), final_stop_reason: second.stop_reason,
  };

  const counted = await client.messages.countTokens({ model: MODEL, messages: [question], tools: [weather] });
  report.count_tokens = counted.input_tokens;
  process.stdout.write(JSON.stringify(report) + "\n");
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
