"""Ready-to-run request examples for a key, as relay consoles give them: curl, Python (the
``openai`` SDK), Node (the ``openai`` package), Go and Java (their standard HTTP clients).

Each reads the key from the ``COMPATGATE_API_KEY`` environment variable: the secret is shown
once, when the key is made or rotated, and never again, so the examples carry the gateway's
real base URL and one of the key's allowed models but never the key.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

__all__ = ["ENV_VAR", "Example", "examples"]

ENV_VAR = "COMPATGATE_API_KEY"
PROMPT = "Say hello in five words."


@dataclass(frozen=True, slots=True)
class Example:
    language: str
    label: str
    code: str


def examples(base_url: str, model: str) -> list[Example]:
    """The examples for a gateway at ``base_url`` (ending in ``/v1``) and ``model``."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": PROMPT}]})
    url = json.dumps(base_url)
    model_json = json.dumps(model)
    return [
        Example("curl", "curl", f"""curl {shlex.quote(base_url + "/chat/completions")} \\
  -H "Authorization: Bearer ${ENV_VAR}" \\
  -H "Content-Type: application/json" \\
  -d {shlex.quote(body)}"""),
        Example("python", "Python", f"""# pip install openai
import os

from openai import OpenAI

client = OpenAI(base_url={url}, api_key=os.environ["{ENV_VAR}"])
completion = client.chat.completions.create(
    model={model_json},
    messages=[{{"role": "user", "content": {json.dumps(PROMPT)}}}],
)
print(completion.choices[0].message.content)"""),
        Example("node", "Node", f"""// npm install openai
import OpenAI from "openai";

const client = new OpenAI({{ baseURL: {url}, apiKey: process.env.{ENV_VAR} }});
const completion = await client.chat.completions.create({{
  model: {model_json},
  messages: [{{ role: "user", content: {json.dumps(PROMPT)} }}],
}});
console.log(completion.choices[0].message.content);"""),
        Example("go", "Go", f"""package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {{
	body := []byte(`{body}`)
	req, _ := http.NewRequest("POST", {url}+"/chat/completions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+os.Getenv("{ENV_VAR}"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {{
		panic(err)
	}}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, string(answer))
}}"""),
        Example("java", "Java", f"""import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public class Hello {{
    public static void main(String[] args) throws Exception {{
        String body = {json.dumps(body)};
        HttpRequest request = HttpRequest.newBuilder(URI.create({url} + "/chat/completions"))
            .header("Authorization", "Bearer " + System.getenv("{ENV_VAR}"))
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(body))
            .build();
        HttpResponse<String> response = HttpClient.newHttpClient()
            .send(request, HttpResponse.BodyHandlers.ofString());
        System.out.println(response.statusCode() + " " + response.body());
    }}
}}"""),
    ]
