//! Ollama ⇄ OpenAI translation: requests, whole responses and incremental stream translators in both
//! directions, as pure functions independent of the HTTP layer.
