//! What an OpenAI-compatible endpoint tells of a model, for `/api/show` (which Ollama clients read
//! for the context window and the capabilities): llama-server's `/props` (the context a request
//! can use, the chat template, vision) and any endpoint's `/models` entry (llama-server's `meta`:
//! training context and parameter count; vLLM's `max_model_len`; others' `context_length`).
//!
//! llama-server does not report the model's architecture, so `model_info` names the server as the
//! architecture: `llama-server.context_length` is the context one request can use (the server's
//! per-slot `n_ctx`), where clients that read `<general.architecture>.context_length` find it.

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::config::EndpointKind;
use crate::routing::endpoint::EndpointState;
use crate::routing::fetch::get_json;
use crate::state::Shared;

/// The longest these questions may take: `/api/show` answers without them rather than wait.
const ASK_AT_MOST: Duration = Duration::from_secs(2);

#[derive(Debug, Default, PartialEq)]
pub struct Facts {
    /// The context one request can use (llama-server: per slot).
    pub n_ctx: Option<u64>,
    /// The context the model was trained for.
    pub n_ctx_train: Option<u64>,
    pub n_params: Option<u64>,
    pub template: Option<String>,
    pub vision: bool,
    /// The endpoint serves the model with tool calling (llama-server: a template that takes tools).
    pub tools: bool,
    /// The architecture key `model_info` uses.
    arch: &'static str,
}

/// Asks the endpoint (both questions at once, each bounded); an answer it cannot give is left out.
pub async fn facts(shared: &Shared, ep: &EndpointState, model: &str) -> Facts {
    let timeout = shared.config.discovery.poll_timeout.min(ASK_AT_MOST);
    let models_path = format!("{}/models", ep.openai_base());
    let props = async {
        match ep.kind() {
            EndpointKind::LlamaServer => get_json(ep, "/props", timeout).await.ok(),
            _ => None,
        }
    };
    let (props, models) =
        futures_util::future::join(props, get_json(ep, &models_path, timeout)).await;
    let entry = models.ok().and_then(|v| {
        v.get("data")?
            .as_array()?
            .iter()
            .find(|m| m.get("id").and_then(Value::as_str) == Some(model))
            .cloned()
    });
    read(ep.kind(), props.as_ref(), entry.as_ref())
}

fn read(kind: EndpointKind, props: Option<&Value>, entry: Option<&Value>) -> Facts {
    let num = |v: Option<&Value>| v.and_then(Value::as_u64).filter(|&n| n > 0);
    let meta = entry.and_then(|e| e.get("meta"));
    let template = props
        .and_then(|p| p.get("chat_template"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    Facts {
        n_ctx: num(props.and_then(|p| p.pointer("/default_generation_settings/n_ctx")))
            .or_else(|| num(entry.and_then(|e| e.get("max_model_len"))))
            .or_else(|| num(entry.and_then(|e| e.get("context_length")))),
        n_ctx_train: num(meta.and_then(|m| m.get("n_ctx_train"))),
        n_params: num(meta.and_then(|m| m.get("n_params"))),
        vision: props
            .and_then(|p| p.pointer("/modalities/vision"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        tools: template.as_deref().is_some_and(|t| t.contains("tools")),
        template,
        arch: match kind {
            EndpointKind::LlamaServer => "llama-server",
            _ => "openai",
        },
    }
}

impl Facts {
    /// Ollama's `parameters` text: the context window, as a Modelfile would set it.
    pub fn parameters(&self) -> String {
        self.n_ctx
            .map(|n| format!("num_ctx {n}"))
            .unwrap_or_default()
    }

    pub fn model_info(&self) -> Value {
        let mut info = Map::new();
        info.insert("general.architecture".into(), json!(self.arch));
        if let Some(n) = self.n_params {
            info.insert("general.parameter_count".into(), json!(n));
        }
        if let Some(n) = self.n_ctx.or(self.n_ctx_train) {
            info.insert(format!("{}.context_length", self.arch), json!(n));
        }
        if let Some(n) = self.n_ctx_train {
            info.insert("general.context_length_trained".into(), json!(n));
        }
        Value::Object(info)
    }

    pub fn capabilities(&self) -> Vec<&'static str> {
        let mut caps = vec!["completion"];
        if self.tools {
            caps.push("tools");
        }
        if self.vision {
            caps.push("vision");
        }
        caps
    }

    /// `details.parameter_size` as Ollama writes it (`8.0B`, `160.3K`).
    pub fn parameter_size(&self) -> String {
        let Some(n) = self.n_params else {
            return String::new();
        };
        let n = n as f64;
        match n {
            _ if n >= 1e9 => format!("{:.1}B", n / 1e9),
            _ if n >= 1e6 => format!("{:.1}M", n / 1e6),
            _ if n >= 1e3 => format!("{:.1}K", n / 1e3),
            _ => format!("{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_server_props_and_meta() {
        let props = json!({"default_generation_settings": {"n_ctx": 1024}, "total_slots": 2,
            "modalities": {"vision": true, "audio": false},
            "chat_template": "{% if tools %}{{ tools | tojson }}{% endif %}"});
        let entry = json!({"id": "tiny", "meta": {"n_ctx_train": 2048, "n_params": 160320}});
        let f = read(EndpointKind::LlamaServer, Some(&props), Some(&entry));
        assert_eq!(
            (f.n_ctx, f.n_ctx_train, f.n_params),
            (Some(1024), Some(2048), Some(160320))
        );
        assert_eq!(f.parameters(), "num_ctx 1024");
        assert_eq!(f.capabilities(), ["completion", "tools", "vision"]);
        assert_eq!(f.parameter_size(), "160.3K");
        let info = f.model_info();
        assert_eq!(info["general.architecture"], "llama-server");
        assert_eq!(info["llama-server.context_length"], 1024);
        assert_eq!(info["general.context_length_trained"], 2048);
    }

    #[test]
    fn vllm_and_unknown_endpoints() {
        let vllm = json!({"id": "m", "max_model_len": 32768});
        let f = read(EndpointKind::OpenAi, None, Some(&vllm));
        assert_eq!(f.n_ctx, Some(32768));
        assert_eq!(f.model_info()["openai.context_length"], 32768);
        let nothing = read(EndpointKind::OpenAi, None, None);
        assert_eq!(nothing.parameters(), "");
        assert_eq!(nothing.capabilities(), ["completion"]);
        assert_eq!(
            nothing.model_info(),
            json!({"general.architecture": "openai"})
        );
        // Junk where numbers belong is left out.
        let junk = json!({"default_generation_settings": {"n_ctx": "big"}, "chat_template": 5});
        let f = read(EndpointKind::LlamaServer, Some(&junk), None);
        assert_eq!((f.n_ctx, f.template.as_deref()), (None, None));
    }
}
