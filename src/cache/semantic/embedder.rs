//! all-MiniLM-L6-v2 in candle: text → 384 numbers whose dot product says how alike two texts
//! mean. Tokenised as sentence-transformers does (BERT word pieces, cut at 256), a batch padded
//! only to its longest text (the shipped tokenizer pads everything to 128: seven times the
//! work for a short question), mean-pooled over the real tokens, L2-normalised.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// The model's output size.
pub use super::DIMS;
/// sentence-transformers' `max_seq_length` for this model.
const MAX_TOKENS: usize = 256;

pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("the embedding model is missing {0}: run `bash scripts/fetch-embedding-model.sh` (or set cache_embedding_model to the folder that has model.safetensors, config.json and tokenizer.json)")]
    Missing(PathBuf),
    #[error("the embedding model in {dir} cannot be loaded: {reason}")]
    Load { dir: PathBuf, reason: String },
    #[error("embedding failed: {0}")]
    Run(String),
}

impl Embedder {
    pub fn load(dir: &Path) -> Result<Embedder, EmbedError> {
        if let Some(missing) = crate::config::missing_model_file(dir) {
            return Err(EmbedError::Missing(missing));
        }
        let load_err = |reason: String| EmbedError::Load {
            dir: dir.to_path_buf(),
            reason,
        };
        let config: Config = std::fs::read(dir.join("config.json"))
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            .map_err(|e| load_err(format!("config.json: {e}")))?;
        tokenizers::utils::parallelism::set_parallelism(false);
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| load_err(format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| load_err(format!("tokenizer.json: {e}")))?;
        // The weights are read into memory (not mapped): 91 MB that a file replaced under a
        // running router cannot change.
        let weights = std::fs::read(dir.join("model.safetensors"))
            .map_err(|e| load_err(format!("model.safetensors: {e}")))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DTYPE, &Device::Cpu)
            .map_err(|e| load_err(format!("model.safetensors: {e}")))?;
        let model = BertModel::load(vb, &config).map_err(|e| load_err(e.to_string()))?;
        Ok(Embedder { model, tokenizer })
    }

    /// One unit vector per text, in order. An empty text embeds as `[CLS] [SEP]` does.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<[f32; DIMS]>, EmbedError> {
        let run = |e: &dyn std::fmt::Display| EmbedError::Run(e.to_string());
        // One text at a time: `encode_batch` would hand the work to a thread pool, and this
        // runs on one core by design.
        let encodings = texts
            .iter()
            .map(|t| self.tokenizer.encode(*t, true))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| run(&e))?;
        // Padding costs as much as text: texts of like length go through together (a question of
        // 10 pieces is not padded to a history summary's 200).
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());
        let mut out = vec![[0f32; DIMS]; encodings.len()];
        let mut start = 0;
        while start < order.len() {
            let shortest = encodings[order[start]].len();
            let mut end = start + 1;
            while end < order.len() && encodings[order[end]].len() <= shortest + shortest / 2 + 4 {
                end += 1;
            }
            let group: Vec<tokenizers::Encoding> = order[start..end]
                .iter()
                .map(|&i| encodings[i].clone())
                .collect();
            for (v, &i) in self.forward(group)?.into_iter().zip(&order[start..end]) {
                out[i] = v;
            }
            start = end;
        }
        Ok(out)
    }

    /// One padded batch through the model.
    fn forward(
        &self,
        mut encodings: Vec<tokenizers::Encoding>,
    ) -> Result<Vec<[f32; DIMS]>, EmbedError> {
        let run = |e: &dyn std::fmt::Display| EmbedError::Run(e.to_string());
        if let Some(params) = self.tokenizer.get_padding() {
            tokenizers::pad_encodings(&mut encodings, params).map_err(|e| run(&e))?;
        }
        let rows = encodings.len();
        let cols = encodings[0].get_ids().len();
        let flat = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
            encodings
                .iter()
                .flat_map(|e| f(e).iter().copied())
                .collect()
        };
        let device = &self.model.device;
        let ids =
            Tensor::from_vec(flat(&|e| e.get_ids()), (rows, cols), device).map_err(|e| run(&e))?;
        let types = Tensor::from_vec(flat(&|e| e.get_type_ids()), (rows, cols), device)
            .map_err(|e| run(&e))?;
        let mask = Tensor::from_vec(flat(&|e| e.get_attention_mask()), (rows, cols), device)
            .map_err(|e| run(&e))?;
        let hidden = self
            .model
            .forward(&ids, &types, Some(&mask))
            .map_err(|e| run(&e))?;
        let pooled = mean_pool(&hidden, &mask).map_err(|e| run(&e))?;
        let values: Vec<Vec<f32>> = pooled.to_vec2().map_err(|e| run(&e))?;
        Ok(values.into_iter().map(|v| unit(&v)).collect())
    }
}

/// The mean of each text's token vectors over its real tokens (padding left out).
fn mean_pool(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
    summed.broadcast_div(&counts)
}

/// `v` scaled to length 1 (sentence-transformers' Normalize: divided by max(|v|, 1e-12)).
pub fn unit(v: &[f32]) -> [f32; DIMS] {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    let mut out = [0f32; DIMS];
    for (o, x) in out.iter_mut().zip(v) {
        *o = x / norm;
    }
    out
}
