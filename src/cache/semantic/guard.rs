//! The second stage of a semantic match. Embeddings say two questions are about the same thing;
//! they do not say the questions want the same answer: "capital of France" and "capital of Spain",
//! "is X safe" and "is X not safe", "5 km" and "50 km", "English to German" and "German to English"
//! all sit within a few hundredths of each other. This compares what an embedding blurs, word by
//! word, and refuses the match on any difference:
//!
//! - numbers (digits or number words, with their units), as a multiset;
//! - negation: how many negating words each side has;
//! - polar words (increase/decrease, enable/disable, install/uninstall, faster/slower, …): which
//!   pole of which pair each side names;
//! - salient words (names written with a capital inside a sentence, code identifiers, acronyms,
//!   programming and human languages, units): each side's must all appear in the other;
//! - order: where a direction is stated (`to`, `into`, `from`, `than`, `vs`, `->`), the salient
//!   words the two share must come in the same order;
//! - language: when both sides are recognisably written in a human language, the same one.
//!
//! It errs towards refusing: a refused paraphrase costs one backend request, a wrong answer costs
//! the user's trust. docs/cache.md has the evaluation (tests/fixtures/semantic/pairs.jsonl).

use std::collections::HashSet;

/// Why two questions may not share an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    Numbers,
    Negation,
    Polarity,
    Names,
    Order,
    Language,
}

/// `Ok` when nothing tells `a` and `b` apart beyond wording.
pub fn agrees(a: &str, b: &str) -> Result<(), Mismatch> {
    let (a, b) = (Words::read(a), Words::read(b));
    if sorted(&a.numbers) != sorted(&b.numbers) {
        return Err(Mismatch::Numbers);
    }
    if a.negations != b.negations {
        return Err(Mismatch::Negation);
    }
    if !same_poles(&a.poles, &b.poles) {
        return Err(Mismatch::Polarity);
    }
    if !a.salient.iter().all(|w| b.has(w)) || !b.salient.iter().all(|w| a.has(w)) {
        return Err(Mismatch::Names);
    }
    if !keeps_direction(&a, &b) || !keeps_direction(&b, &a) || !same_name_order(&a, &b) {
        return Err(Mismatch::Order);
    }
    match (a.language(), b.language()) {
        (Some(x), Some(y)) if x != y => Err(Mismatch::Language),
        _ => Ok(()),
    }
}

/// No pair of opposites is named one way in `a` and another in `b` ("install" / "uninstall"). A
/// pole named on one side only is wording ("the best time" / "the ideal season"), except for the
/// particles that turn a verb around on their own ("zoom out" / "zoom in").
fn same_poles(a: &[(usize, bool)], b: &[(usize, bool)]) -> bool {
    let sides = |poles: &[(usize, bool)], pair: usize| {
        (
            poles.contains(&(pair, true)),
            poles.contains(&(pair, false)),
        )
    };
    let pairs = a.iter().chain(b).map(|p| p.0);
    pairs.into_iter().all(|pair| {
        let (x, y) = (sides(a, pair), sides(b, pair));
        let named_on_both = x != (false, false) && y != (false, false);
        x == y || (!named_on_both && !PARTICLES.contains(&POLES[pair]))
    })
}

fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// Names both sides give, in the same order: "the time in Sydney when it is 9am in London" is not
/// "the time in London when it is 9am in Sydney".
fn same_name_order(a: &Words, b: &Words) -> bool {
    let shared = |x: &Words, y: &Words| -> Vec<String> {
        let mut seen = Vec::new();
        for n in &x.names {
            if y.names.contains(n) && !seen.contains(n) {
                seen.push(n.clone());
            }
        }
        seen
    };
    let (x, y) = (shared(a, b), shared(b, a));
    x.len() < 2 || x == y
}

/// Every direction `a` states ("X to Y", "X than Y", "from X": the words on either side of the
/// marker) that `b` also names is not reversed in `b`.
fn keeps_direction(a: &Words, b: &Words) -> bool {
    a.directions
        .iter()
        .all(|(x, y)| match (b.position(x), b.position(y)) {
            (Some(px), Some(py)) => px < py,
            _ => true,
        })
}

/// What the guard reads off one question.
#[derive(Default, Debug)]
struct Words {
    /// Every word, lowercased, with a plural's and a possessive's `s` also kept without it.
    all: HashSet<String>,
    numbers: Vec<String>,
    negations: usize,
    poles: Vec<(usize, bool)>,
    salient: Vec<String>,
    /// Names (capitalised inside a sentence, or known), in the order written.
    names: Vec<String>,
    /// Content words in the order written (articles and the like left out).
    content: Vec<String>,
    /// (word before, word after) each direction marker.
    directions: Vec<(String, String)>,
    after_number: bool,
    /// The word before the one being read.
    previous: String,
    /// Function words seen per language (`LANGUAGES`).
    language_votes: [usize; LANGUAGES.len()],
}

impl Words {
    fn read(text: &str) -> Words {
        let mut w = Words::default();
        let mut sentence_start = true;
        let mut markers = Vec::new();
        let mut comparatives = Vec::new();
        for raw in text.split_whitespace() {
            let ends_sentence = raw.ends_with(['.', '?', '!', ':', ';']);
            let token = trim_punctuation(raw);
            if !token.is_empty() {
                let lower = token.to_lowercase();
                if DIRECTIONS.contains(&lower.as_str()) {
                    if lower == "than" {
                        comparatives.push(w.content.len());
                    }
                    markers.push(w.content.len());
                } else {
                    w.take(token, sentence_start);
                }
            }
            sentence_start = ends_sentence || (token.is_empty() && sentence_start);
        }
        for &at in &comparatives {
            if let Some(x) = at.checked_sub(1).and_then(|i| w.content.get(i)).cloned() {
                // "denser than" is not "less dense than", "greater than" not "less than".
                w.salient_word(x);
            }
        }
        for at in markers {
            if let (Some(x), Some(y)) = (
                at.checked_sub(1).and_then(|i| w.content.get(i)),
                w.content.get(at),
            ) {
                w.directions.push((x.clone(), y.clone()));
            }
        }
        w
    }

    fn position(&self, word: &str) -> Option<usize> {
        self.content.iter().position(|w| w == word)
    }

    fn take(&mut self, token: &str, sentence_start: bool) {
        let lower = token.to_lowercase();
        let lower = ALIASES
            .iter()
            .find(|(alias, _)| *alias == lower)
            .map_or(lower, |(_, name)| name.to_string());
        let (stem, possessive) = match lower
            .strip_suffix("'s")
            .or_else(|| lower.strip_suffix("\u{2019}s"))
        {
            Some(s) => (s.to_string(), true),
            None => (lower.clone(), false),
        };
        self.remember(&stem);
        for part in stem
            .split(['-', '/'])
            .filter(|p| !p.is_empty() && p.len() < stem.len())
        {
            self.remember(part);
        }
        if !FILLER.contains(&stem.as_str()) {
            self.content.push(stem.clone());
        }
        let before = std::mem::replace(&mut self.previous, stem.clone());
        if let Some(v) = LANGUAGES
            .iter()
            .position(|(_, words)| words.contains(&stem.as_str()))
        {
            self.language_votes[v] += 1;
        }
        if is_negation(&stem) || (!possessive && lower.ends_with("n't")) {
            self.negations += 1;
        }
        let counted =
            self.after_number || matches!(before.as_str(), "many" | "much" | "per" | "in");
        self.after_number = false;
        if counted && TIME_UNITS.contains(&stem.as_str()) {
            // What is counted: "5 years" is not "5 months", "seconds in a day" not "minutes".
            self.salient_word(stem.clone());
        }
        if let Some(n) = number(&stem) {
            self.numbers.push(n.value);
            match n.unit {
                Some(unit) => self.salient_word(unit),
                None => self.after_number = true,
            }
            return;
        }
        let opens_request = sentence_start || matches!(before.as_str(), "please" | "you");
        let filler_verb = opens_request && IMPERATIVES.contains(&stem.as_str());
        if let Some(pole) = pole(&stem).filter(|_| !filler_verb) {
            self.poles.push(pole);
        }
        let named = !sentence_start && token.chars().next().is_some_and(char::is_uppercase);
        let name = named && !COMMON_CAPITALISED.contains(&stem.as_str())
            || KNOWN_NAMES.contains(&stem.as_str())
            || WHO.contains(&stem.as_str());
        if name {
            self.names.push(stem.clone());
        }
        if name || is_identifier(token) || is_acronym(token) || UNITS.contains(&stem.as_str()) {
            self.salient_word(stem);
        }
    }

    fn salient_word(&mut self, word: String) {
        self.remember(&word);
        self.salient.push(word);
    }

    fn remember(&mut self, word: &str) {
        self.all.insert(word.to_string());
        if let Some(singular) = word.strip_suffix('s').filter(|s| s.len() > 1) {
            self.all.insert(singular.to_string());
        }
    }

    fn has(&self, word: &str) -> bool {
        self.all.contains(word)
            || word.strip_suffix('s').is_some_and(|s| self.all.contains(s))
            || self.all.contains(&format!("{word}s"))
    }

    /// The language most of the function words belong to, when one clearly leads.
    fn language(&self) -> Option<usize> {
        let mut best = (0, None);
        let mut second = 0;
        for (i, &v) in self.language_votes.iter().enumerate() {
            if v > best.0 {
                second = best.0;
                best = (v, Some(i));
            } else if v > second {
                second = v;
            }
        }
        (best.0 >= 2 && best.0 > second * 2)
            .then_some(best.1)
            .flatten()
    }
}

fn trim_punctuation(raw: &str) -> &str {
    let t = raw.trim_matches(|c: char| {
        matches!(
            c,
            '?' | '!'
                | ','
                | ';'
                | '"'
                | '\''
                | '('
                | '['
                | '{'
                | '<'
                | '>'
                | '}'
                | ']'
                | '*'
                | '`'
                | '\u{201c}'
                | '\u{201d}'
                | '\u{2018}'
                | '\u{2019}'
                | '¿'
                | '¡'
        )
    });
    // A trailing `)` closes a call (`len()`) or a parenthesis: keep it only after `(`.
    let t = if t.ends_with(')') && !t.contains('(') {
        &t[..t.len() - 1]
    } else {
        t
    };
    t.trim_end_matches(['.', ':'])
}

struct Number {
    value: String,
    unit: Option<String>,
}

/// A number written in digits (`5`, `3.12`, `1,000`, `50km`, `-2`, `10%`) or as a word.
fn number(word: &str) -> Option<Number> {
    if let Some(i) = NUMBER_WORDS
        .iter()
        .position(|w| !w.is_empty() && *w == word)
    {
        return Some(Number {
            value: i.to_string(),
            unit: None,
        });
    }
    if let Some(tens) = TENS.iter().position(|w| *w == word) {
        return Some(Number {
            value: ((tens + 2) * 10).to_string(),
            unit: None,
        });
    }
    // `3-day`, `ten-year-old`: the number, and what it counts after the hyphen.
    if let Some((head, rest)) = word
        .split_once('-')
        .filter(|(h, r)| !h.is_empty() && !r.is_empty())
    {
        if let Some(n) = number(head).filter(|n| n.unit.is_none()) {
            let unit = rest.split('-').next().map(str::to_string);
            return Some(Number {
                value: n.value,
                unit,
            });
        }
    }
    let body = word.strip_prefix(['-', '+', '$', '€', '£']).unwrap_or(word);
    // `v20`: a version number.
    let body = body
        .strip_prefix('v')
        .filter(|b| b.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(body);
    let digits_end = body
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.' || *c == ','))
        .map_or(body.len(), |(i, _)| i);
    let digits = body[..digits_end].trim_end_matches(['.', ',']);
    if digits.is_empty() || !digits.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let rest = &body[digits.len()..];
    let unit = match rest {
        "" => None,
        r if r.trim_start_matches('°').chars().all(char::is_alphabetic) || r == "%" => {
            Some(r.to_string())
        }
        // `3.12.1`, `v2-beta`, `4x4`: an identifier, not a number.
        _ => return None,
    };
    let mut value: String = digits.chars().filter(|c| *c != ',').collect();
    if word.starts_with('-') {
        value.insert(0, '-');
    }
    Some(Number { value, unit })
}

fn is_negation(word: &str) -> bool {
    NEGATIONS.contains(&word)
}

/// Which pole of which opposite pair `word` names (by stem: `increas` covers increase,
/// increasing, increased).
fn pole(word: &str) -> Option<(usize, bool)> {
    let mut best: Option<(usize, (usize, bool))> = None;
    for (i, (plus, minus)) in POLES.iter().enumerate() {
        for (stems, side) in [(plus, true), (minus, false)] {
            for stem in stems.split('|') {
                let fits = if let Some(exact) = stem.strip_suffix('$') {
                    word == exact
                } else {
                    word.starts_with(stem)
                };
                if fits && best.is_none_or(|(len, _)| stem.len() > len) {
                    best = Some((stem.len(), (i, side)));
                }
            }
        }
    }
    best.map(|(_, p)| p)
}

/// A code identifier: snake_case, camelCase, a path (`a::b`, `a.b`), a call (`f()`), or letters
/// mixed with digits (`utf8`, `python3`).
fn is_identifier(token: &str) -> bool {
    let has_letter = token.chars().any(char::is_alphabetic);
    // A command-line flag: `-r`, `--force`.
    if token.starts_with('-') && has_letter {
        return true;
    }
    let inner = |c: char| token.trim_matches(c).contains(c);
    has_letter
        && (inner('_')
            || token.contains("::")
            || token.ends_with("()")
            || dotted(token)
            || token.chars().any(|c| c.is_ascii_digit())
            || token.chars().skip(1).any(|c| c.is_uppercase())
                && token.chars().any(char::is_lowercase))
}

/// `os.path`, `node.js`, not `e.g.` or `...`.
fn dotted(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() > 1
        && parts.iter().all(|p| !p.is_empty())
        && parts.iter().any(|p| p.chars().count() > 1)
}

/// `API`, `JSON`, `K8S`: two or more capitals and no lowercase.
fn is_acronym(token: &str) -> bool {
    token.chars().filter(|c| c.is_uppercase()).count() >= 2
        && !token.chars().any(char::is_lowercase)
}

const DIRECTIONS: [&str; 9] = [
    "to", "into", "from", "than", "vs", "versus", "over", "→", "->",
];

/// Time spans: compared when they follow a number ("5 years" is not "5 months").
const TIME_UNITS: &[&str] = &[
    "second", "seconds", "minute", "minutes", "hour", "hours", "day", "days", "week", "weeks",
    "month", "months", "year", "years",
];

/// Verbs that open a request ("Write a query…", "Show me…"): not a pole there.
const IMPERATIVES: &[&str] = &["write", "show", "give", "make", "tell"];

/// Short names and their long forms: one name to compare.
const ALIASES: &[(&str, &str)] = &[
    ("js", "javascript"),
    ("ts", "typescript"),
    ("golang", "go"),
    ("py", "python"),
    ("postgres", "postgresql"),
    ("k8s", "kubernetes"),
    ("cpp", "c++"),
    ("percent", "%"),
    ("°c", "celsius"),
    ("°f", "fahrenheit"),
    ("nodejs", "node.js"),
];

/// Words that carry no direction of their own: left out of the words a direction is read from.
const FILLER: &[&str] = &[
    "a", "an", "the", "my", "your", "his", "her", "its", "our", "their", "this", "that", "these",
    "those", "some", "any", "each", "every", "all", "of", "i", "you", "me", "we", "it", "one",
];

const NEGATIONS: [&str; 21] = [
    "not", "no", "never", "none", "nothing", "neither", "nor", "without", "cannot", "nobody",
    "nowhere", "hardly", "barely", "seldom", "rarely", "scarcely", "nicht", "kein", "keine", "pas",
    "jamais",
];

// "one" is left out: far more often a pronoun ("which one") than a count.
const NUMBER_WORDS: [&str; 21] = [
    "zero",
    "",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
];
const TENS: [&str; 8] = [
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// Opposite pairs, by stem (`|` separates stems of one pole; a trailing `$` means the whole word).
const POLES: &[(&str, &str)] = &[
    PARTICLES[0],
    PARTICLES[1],
    PARTICLES[2],
    PARTICLES[3],
    ("agree", "disagree"),
    ("support", "oppos"),
    (
        "rise$|rises$|rising|rose$|risen",
        "fall$|falls$|falling|fell$|fallen|declin|collaps",
    ),
    ("success|succeed", "fail"),
    ("good$|better$|best$", "bad$|worse$|worst$"),
    ("early|earlier|earliest", "late$|later$|latest"),
    ("morning", "evening|night"),
    ("similar", "differen"),
    (
        "increas|rais|grow|expand|enlarg",
        "decreas|lower$|reduc|shrink|diminish",
    ),
    ("enabl|activat", "disabl|deactivat"),
    ("install", "uninstall"),
    (
        "add$|adds$|adding|added|insert|append|attach",
        "delet|remov|drop$|drops$|detach|strip",
    ),
    ("start|launch|begin", "stop|halt|end$|finish"),
    ("encrypt", "decrypt"),
    ("encod", "decod"),
    ("compress|zip$", "decompress|unzip|extract"),
    ("serializ", "deserializ"),
    ("upload", "download"),
    ("import", "export"),
    ("push", "pull"),
    ("open$|opens$|opening|opened", "clos"),
    ("lock$|locks$|locking|locked", "unlock"),
    ("mount", "unmount"),
    ("connect", "disconnect"),
    ("subscrib", "unsubscrib"),
    ("follow", "unfollow"),
    ("show$|shows$|showing|shown", "hide$|hides$|hiding|hidden"),
    (
        "max$|maximum|maximal|maximiz|maximis",
        "min$|minimum|minimal|minimiz|minimis",
    ),
    ("fast|quicker|quickest", "slow"),
    (
        "big$|bigger|biggest|larg|high$|higher|highest|tall",
        "small|little|low$|lowest|short$|shorter|shortest",
    ),
    ("long$|longer|longest", "brief"),
    ("more$|most$", "less$|least$|fewer|fewest"),
    ("before", "after$"),
    ("above|over$", "below|under$"),
    ("first", "last$"),
    ("ascending|asc$", "descending|desc$"),
    ("upper|uppercas", "lowercas"),
    ("left$", "right$"),
    ("buy|purchas", "sell"),
    ("win$|wins$|winning|won$", "lose$|loses$|losing|lost$"),
    ("true$", "false$"),
    ("read$|reads$|reading|reader", "writ"),
    ("send|sent$", "receiv"),
    ("positiv", "negativ"),
    ("hot$|hotter|hottest|warm|heat", "cold|cool"),
    ("inside|internal", "outside|external"),
    ("north", "south"),
    ("east$|eastern", "west$|western"),
    ("accept", "reject"),
    (
        "allow|permit",
        "deny|block$|blocks$|blocking|blocked|forbid",
    ),
    ("merg", "split"),
    ("join", "leav"),
    ("profit", "loss$"),
    ("safe$|safely|secure$", "unsafe|dangerous|insecure|vulnerab"),
    ("legal", "illegal"),
    ("valid", "invalid"),
    ("visible", "invisible"),
    ("forward", "backward"),
    ("overestimat", "underestimat"),
    (
        "advantage|pro$|pros$|benefit",
        "disadvantage|con$|cons$|drawback|downside",
    ),
    ("like$|likes$|love", "hate|dislike"),
    ("sum$|plus$|addition", "minus$|subtract"),
    (
        "easy|easier|easiest|simple$|simpler|simplest|simply|soft",
        "hard$|harder|hardest|difficult",
    ),
    ("multipli|multiply", "divid|division"),
    ("even$", "odd$"),
    ("past$", "future"),
    ("yesterday", "tomorrow"),
];

/// Of up/down, out/in and on/off only the rarer particle counts, and on one side alone it is
/// enough: "set up" and "log in" are how most requests are worded, "scroll down", "zoom out" and
/// "turn off" turn them around.
const PARTICLES: &[(&str, &str)] = &[
    ("upward", "down$|downward"),
    ("outward|out$", "inward"),
    ("onward", "off$"),
    ("favour|favor", "against|anti$"),
];

/// Programming and human languages, formats and platforms people name in lowercase.
const KNOWN_NAMES: &[&str] = &[
    "python",
    "rust",
    "go",
    "golang",
    "java",
    "javascript",
    "js",
    "typescript",
    "ts",
    "c",
    "c++",
    "c#",
    "cpp",
    "ruby",
    "php",
    "swift",
    "kotlin",
    "scala",
    "bash",
    "zsh",
    "shell",
    "powershell",
    "sql",
    "html",
    "css",
    "haskell",
    "perl",
    "lua",
    "dart",
    "elixir",
    "erlang",
    "julia",
    "matlab",
    "r",
    "fortran",
    "cobol",
    "clojure",
    "ocaml",
    "zig",
    "nim",
    "julia",
    "json",
    "yaml",
    "toml",
    "xml",
    "csv",
    "markdown",
    "linux",
    "windows",
    "macos",
    "mac",
    "ios",
    "android",
    "docker",
    "kubernetes",
    "postgres",
    "postgresql",
    "mysql",
    "sqlite",
    "redis",
    "mongodb",
    "react",
    "vue",
    "angular",
    "django",
    "flask",
    "numpy",
    "pandas",
    "english",
    "german",
    "french",
    "spanish",
    "italian",
    "portuguese",
    "dutch",
    "chinese",
    "japanese",
    "korean",
    "russian",
    "arabic",
    "hindi",
    "polish",
    "turkish",
    "swedish",
    "celsius",
    "fahrenheit",
    "kelvin",
];

const UNITS: &[&str] = &[
    "km",
    "kilometer",
    "kilometers",
    "kilometre",
    "kilometres",
    "mile",
    "miles",
    "mi",
    "m",
    "meter",
    "meters",
    "metre",
    "metres",
    "cm",
    "mm",
    "ft",
    "feet",
    "foot",
    "inch",
    "inches",
    "yd",
    "yard",
    "yards",
    "kg",
    "kilogram",
    "kilograms",
    "g",
    "gram",
    "grams",
    "lb",
    "lbs",
    "pound",
    "pounds",
    "oz",
    "ounce",
    "ounces",
    "l",
    "liter",
    "liters",
    "litre",
    "litres",
    "ml",
    "gallon",
    "gallons",
    "gb",
    "mb",
    "kb",
    "tb",
    "gib",
    "mib",
    "kib",
    "byte",
    "bytes",
    "bit",
    "bits",
    "ms",
    "sec",
    "min",
    "h",
    "days",
    "usd",
    "eur",
    "gbp",
    "dollar",
    "dollars",
    "euro",
    "euros",
    "%",
    "percent",
    "mph",
    "kph",
    "kmh",
    "watt",
    "watts",
    "kw",
    "kwh",
    "volt",
    "volts",
    "hz",
    "ghz",
    "mhz",
    "degrees",
    "°c",
    "°f",
    "tablespoon",
    "tablespoons",
    "tbsp",
    "teaspoon",
    "teaspoons",
    "tsp",
    "cup",
    "cups",
    "milliliter",
    "milliliters",
    "millilitre",
    "millilitres",
    "quart",
    "quarts",
    "pint",
    "pints",
    "acre",
    "acres",
    "hectare",
    "hectares",
];

/// Who a question is about: a dose for adults is not a dose for children, a symptom in women not
/// one in men, chocolate for a dog not for a cat.
const WHO: &[&str] = &[
    "adult",
    "adults",
    "child",
    "children",
    "kid",
    "kids",
    "infant",
    "infants",
    "baby",
    "babies",
    "toddler",
    "toddlers",
    "teen",
    "teens",
    "teenager",
    "teenagers",
    "elderly",
    "senior",
    "seniors",
    "pregnant",
    "man",
    "men",
    "woman",
    "women",
    "male",
    "males",
    "female",
    "females",
    "boy",
    "boys",
    "girl",
    "girls",
    "dog",
    "dogs",
    "puppy",
    "puppies",
    "cat",
    "cats",
    "kitten",
    "kittens",
    "horse",
    "horses",
    "cow",
    "cows",
    "bird",
    "birds",
    "rabbit",
    "rabbits",
];

/// Capitalised words that name nothing in particular.
const COMMON_CAPITALISED: &[&str] = &["i", "i'm", "i've", "i'd", "i'll", "ok", "okay", "please"];

/// Function words of the languages the guard tells apart: a question in German and the same in
/// English want answers in their own language.
const LANGUAGES: [(&str, &[&str]); 6] = [
    (
        "en",
        &[
            "the", "is", "are", "what", "how", "why", "which", "and", "of", "do", "does", "can",
            "you", "with", "for", "this", "that", "my", "your", "a", "an", "i", "it", "in",
        ],
    ),
    (
        "de",
        &[
            "der", "die", "das", "ist", "sind", "wie", "was", "warum", "welche", "und", "ich",
            "du", "mit", "für", "ein", "eine", "einen", "nicht", "kann", "mein", "dem", "den",
            "ich", "es", "zu", "auf", "im",
        ],
    ),
    (
        "fr",
        &[
            "le",
            "la",
            "les",
            "est",
            "sont",
            "comment",
            "quoi",
            "pourquoi",
            "quel",
            "quelle",
            "et",
            "je",
            "tu",
            "vous",
            "avec",
            "pour",
            "un",
            "une",
            "des",
            "du",
            "ce",
            "qu'est-ce",
            "dans",
            "que",
        ],
    ),
    (
        "es",
        &[
            "el", "los", "las", "es", "son", "cómo", "como", "qué", "por", "para", "y", "yo",
            "con", "un", "una", "del", "lo", "cuál", "cual", "se", "mi", "en",
        ],
    ),
    (
        "it",
        &[
            "il", "lo", "gli", "è", "sono", "come", "cosa", "perché", "quale", "e", "io", "con",
            "per", "uno", "della", "che", "di",
        ],
    ),
    (
        "pt",
        &[
            "o", "os", "é", "são", "como", "que", "porque", "qual", "e", "eu", "com", "para", "um",
            "uma", "do", "da", "em", "não",
        ],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paraphrases_pass() {
        for (a, b) in [
            ("What is Python?", "What's Python?"),
            (
                "How do I reverse a list in Python",
                "python: reverse a list",
            ),
            ("Explain recursion.", "Can you explain recursion?"),
            ("Convert 5 miles to km", "convert 5 miles into km"),
            ("What are REST APIs?", "Explain REST APIs"),
        ] {
            assert_eq!(agrees(a, b), Ok(()), "{a} / {b}");
        }
    }

    #[test]
    fn what_an_embedding_blurs_is_refused() {
        for (a, b, why) in [
            (
                "What is the capital of France?",
                "What is the capital of Spain?",
                Mismatch::Names,
            ),
            (
                "How do I install numpy?",
                "How do I uninstall numpy?",
                Mismatch::Polarity,
            ),
            (
                "Is a 5 km run good for beginners?",
                "Is a 50 km run good for beginners?",
                Mismatch::Numbers,
            ),
            (
                "Is it safe to eat raw eggs?",
                "Is it not safe to eat raw eggs?",
                Mismatch::Negation,
            ),
            (
                "Convert 5 miles to km",
                "Convert 5 km to miles",
                Mismatch::Order,
            ),
            (
                "Translate hello from English to German",
                "Translate hello from German to English",
                Mismatch::Order,
            ),
            (
                "What does Vec::sort_by do?",
                "What does Vec::sort_by_key do?",
                Mismatch::Names,
            ),
            (
                "Reverse a list in python",
                "Reverse a list in rust",
                Mismatch::Names,
            ),
            (
                "Wie spät ist es in Berlin?",
                "What time is it in Berlin?",
                Mismatch::Language,
            ),
            (
                "Is Rust faster than Go?",
                "Is Go faster than Rust?",
                Mismatch::Order,
            ),
            (
                "What's new in Python 3.12?",
                "What's new in Python 3.8?",
                Mismatch::Numbers,
            ),
            (
                "How do I increase the heap size?",
                "How do I decrease the heap size?",
                Mismatch::Polarity,
            ),
            (
                "What is the ibuprofen dose for adults?",
                "What is the ibuprofen dose for children?",
                Mismatch::Names,
            ),
            (
                "Is it safe to eat raw eggs?",
                "Is it hardly safe to eat raw eggs?",
                Mismatch::Negation,
            ),
            (
                "Give arguments for gun control",
                "Give arguments against gun control",
                Mismatch::Polarity,
            ),
            (
                "Why did the Roman empire rise?",
                "Why did the Roman empire fall?",
                Mismatch::Polarity,
            ),
        ] {
            assert_eq!(agrees(a, b), Err(why), "{a} / {b}");
        }
    }

    #[test]
    fn numbers_read_in_their_forms() {
        let n = |w: &str| number(w).map(|n| (n.value, n.unit));
        assert_eq!(n("1,000"), Some(("1000".into(), None)));
        assert_eq!(n("50km"), Some(("50".into(), Some("km".into()))));
        assert_eq!(n("five"), Some(("5".into(), None)));
        assert_eq!(n("3.12"), Some(("3.12".into(), None)));
        assert_eq!(n("-2"), Some(("-2".into(), None)));
        assert_eq!(n("v2"), Some(("2".into(), None)));
        assert_eq!(n("4x4"), None);
        assert_eq!(n("python"), None);
    }
}
