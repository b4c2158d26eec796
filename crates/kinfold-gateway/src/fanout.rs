//! Asking every agency at once: one request per adapter, in parallel, each with its own
//! deadline. A slow or failed agency never holds up the answer; it is named in it instead.

use std::time::Duration;

use futures::future::join_all;
use kinfold_fhir::{Agency, NHS_NUMBER_SYSTEM, NhsNumber};
use serde::Deserialize;
use serde_json::Value;

/// Where one agency's adapter is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterEndpoint {
    /// Which agency.
    pub agency: Agency,
    /// Its base URL, e.g. `http://127.0.0.1:8082`.
    pub url: String,
}

/// One resource from an agency: its absolute URL at the adapter, and the resource.
#[derive(Debug, Clone)]
pub struct AgencyRecord {
    /// `fullUrl` at the adapter.
    pub full_url: String,
    /// The resource as the adapter sent it.
    pub resource: Value,
}

/// Why an agency's records are missing from an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgencyFailure {
    /// No answer within the deadline.
    Timeout(Duration),
    /// Could not connect, or the connection broke.
    Unreachable,
    /// The TLS handshake failed: what failed, in words (a certificate that does not name the
    /// URL's host, one from another authority, an expired one, a refused client certificate).
    Tls(String),
    /// Answered with an error status.
    Status(u16),
    /// Answered with something that is not a FHIR searchset.
    Invalid,
    /// Not asked: the record locator knows no record of the person there, and without an
    /// NHS number the agency cannot be asked by number.
    NotAsked,
}

impl AgencyFailure {
    /// What happened, in words ("did not answer within 2000 ms").
    pub fn describe(&self) -> String {
        match self {
            Self::Timeout(deadline) => format!("did not answer within {} ms", deadline.as_millis()),
            Self::Unreachable => "could not be reached".to_owned(),
            Self::Tls(what) => format!("could not be reached: {what}"),
            Self::Status(status) => format!("answered with HTTP status {status}"),
            Self::Invalid => "sent an answer that is not a FHIR searchset".to_owned(),
            Self::NotAsked => "was not asked: Kinfold knows no record of this person there, and without an NHS number it cannot ask by number".to_owned(),
        }
    }
}

/// One agency's part of an answer.
#[derive(Debug, Clone)]
pub struct AgencyAnswer {
    /// Which agency.
    pub agency: Agency,
    /// Its records, or why there are none.
    pub result: Result<Vec<AgencyRecord>, AgencyFailure>,
    /// The agency had more pages than one answer follows ([`MAX_PAGES`]): the records are
    /// the first of them, and the answer must say so.
    pub truncated: bool,
}

/// Records fetched from one agency, and whether more were left behind.
#[derive(Debug, Default)]
struct Fetched {
    records: Vec<AgencyRecord>,
    truncated: bool,
}

/// Whom a query is about, as the agencies know them: the record locator's records
/// (`(agency, "Patient/{id}")`), and the NHS number for agencies where it knows none.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// The records the locator knows.
    pub records: Vec<(Agency, String)>,
    /// The person's NHS number, if a record of theirs holds a valid one.
    pub nhs: Option<NhsNumber>,
}

/// The adapters the gateway asks, and how long it waits for each.
#[derive(Debug, Clone)]
pub struct Agencies {
    endpoints: Vec<AdapterEndpoint>,
    deadline: Duration,
    http: reqwest::Client,
    /// Each agency's time, for `/metrics`.
    timings: Option<Timings>,
}

/// Each agency's part of a fan-out, in seconds, by `agency`.
pub(crate) type Timings = prometheus_client::metrics::family::Family<
    Vec<(String, String)>,
    prometheus_client::metrics::histogram::Histogram,
    fn() -> prometheus_client::metrics::histogram::Histogram,
>;

/// How many pages of one patient's records the gateway follows from one agency (at the
/// adapters' 1,000 a page, 20,000 records); beyond that the answer says it is cut short.
pub const MAX_PAGES: usize = 20;

impl Agencies {
    /// Builds the client, presenting the gateway's client certificate to the adapters and
    /// trusting only their authority. Connections are pooled and kept alive.
    pub fn new(
        endpoints: Vec<AdapterEndpoint>,
        deadline: Duration,
        tls: Option<&kinfold_http::tls::ClientTls>,
    ) -> Result<Self, crate::error::StartError> {
        let builder = reqwest::Client::builder()
            .connect_timeout(deadline)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("kinfold-gateway/", env!("CARGO_PKG_VERSION")));
        let http = match tls {
            Some(tls) => kinfold_http::tls::client(tls, builder)?,
            None if endpoints.is_empty() => builder,
            None => return Err(crate::error::StartError::NoAdapterTls),
        }
        .build()?;
        Ok(Self {
            endpoints,
            deadline,
            http,
            timings: None,
        })
    }

    /// The same, timing each agency's part of every fan-out into `timings`.
    pub(crate) fn timed(mut self, timings: Timings) -> Self {
        self.timings = Some(timings);
        self
    }

    /// The deadline each agency has.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Everything each agency holds about a person: the records the locator knows there, else
    /// (the locator may not know them yet) what the agency finds by NHS number.
    pub async fn everything_of(&self, target: &Target) -> Vec<AgencyAnswer> {
        self.everything_of_types(target, None).await
    }

    /// Like [`Agencies::everything_of`], only records of these types (`_type`, comma-separated:
    /// `Encounter,Observation`); the Patient always comes.
    pub async fn everything_of_types(
        &self,
        target: &Target,
        types: Option<&str>,
    ) -> Vec<AgencyAnswer> {
        let query = types.map_or_else(String::new, |t| format!("?_type={t}"));
        let query = query.as_str();
        self.each_for(
            target,
            |agency, references| async move {
                let mut all = Fetched::default();
                for reference in references {
                    let fetched = agency
                        .follow(format!("{}/{reference}/$everything{query}", agency.base))
                        .await?;
                    all.records.extend(fetched.records);
                    all.truncated |= fetched.truncated;
                }
                Ok(all)
            },
            |agency, nhs| async move { agency.everything(nhs, query).await },
        )
        .await
    }

    /// Each agency's Patient records for this NHS number.
    pub async fn patients(&self, nhs: &NhsNumber) -> Vec<AgencyAnswer> {
        self.each(|agency| async move { agency.patients(nhs).await })
            .await
    }

    /// One resource from one agency by its path (`Binary/ae.1f…`): `None` when the agency does
    /// not have it.
    pub async fn read(&self, agency: Agency, path: &str) -> Result<Option<Value>, AgencyFailure> {
        let endpoint = self
            .endpoints
            .iter()
            .find(|e| e.agency == agency)
            .ok_or(AgencyFailure::Unreachable)?;
        let client = AgencyClient {
            http: &self.http,
            base: endpoint.url.trim_end_matches('/'),
            deadline: self.deadline,
        };
        let call = async {
            let record = client.read(format!("{}/{path}", client.base)).await?;
            Ok(record.map(|r| r.resource))
        };
        tokio::time::timeout(self.deadline, call)
            .await
            .unwrap_or(Err(AgencyFailure::Timeout(self.deadline)))
    }

    /// Asks each agency about one person: by the records the locator knows there, else by
    /// NHS number, else not at all (and the answer says so).
    async fn each_for<'a, K, KFut, N, NFut>(
        &'a self,
        target: &'a Target,
        known: K,
        by_number: N,
    ) -> Vec<AgencyAnswer>
    where
        K: Fn(AgencyClient<'a>, Vec<&'a str>) -> KFut,
        KFut: Future<Output = Result<Fetched, AgencyFailure>>,
        N: Fn(AgencyClient<'a>, &'a NhsNumber) -> NFut,
        NFut: Future<Output = Result<Fetched, AgencyFailure>>,
    {
        let known = &known;
        let by_number = &by_number;
        self.each_agency(move |agency, client| {
            let references: Vec<&'a str> = target
                .records
                .iter()
                .filter(|(a, _)| *a == agency)
                .map(|(_, reference)| reference.as_str())
                .collect();
            async move {
                if !references.is_empty() {
                    known(client, references).await
                } else if let Some(nhs) = &target.nhs {
                    by_number(client, nhs).await
                } else {
                    Err(AgencyFailure::NotAsked)
                }
            }
        })
        .await
    }

    async fn each<'a, F, Fut>(&'a self, work: F) -> Vec<AgencyAnswer>
    where
        F: Fn(AgencyClient<'a>) -> Fut,
        Fut: Future<Output = Result<Fetched, AgencyFailure>>,
    {
        self.each_agency(|_, client| work(client)).await
    }

    async fn each_agency<'a, F, Fut>(&'a self, work: F) -> Vec<AgencyAnswer>
    where
        F: Fn(Agency, AgencyClient<'a>) -> Fut,
        Fut: Future<Output = Result<Fetched, AgencyFailure>>,
    {
        let calls = self.endpoints.iter().map(|endpoint| {
            let client = AgencyClient {
                http: &self.http,
                base: endpoint.url.trim_end_matches('/'),
                deadline: self.deadline,
            };
            let call = work(endpoint.agency, client);
            async move {
                let started = std::time::Instant::now();
                let result = match tokio::time::timeout(self.deadline, call).await {
                    Ok(result) => result,
                    Err(_) => Err(AgencyFailure::Timeout(self.deadline)),
                };
                if let Some(timings) = &self.timings
                    && !matches!(result, Err(AgencyFailure::NotAsked))
                {
                    timings
                        .get_or_create(&vec![("agency".into(), endpoint.agency.as_str().into())])
                        .observe(started.elapsed().as_secs_f64());
                }
                if let Err(failure) = &result
                    && *failure != AgencyFailure::NotAsked
                {
                    tracing::warn!(agency = %endpoint.agency, ?failure, "agency missing from answer");
                }
                let truncated = result.as_ref().is_ok_and(|f| f.truncated);
                AgencyAnswer { agency: endpoint.agency, result: result.map(|f| f.records), truncated }
            }
        });
        join_all(calls).await
    }
}

#[derive(Clone, Copy)]
struct AgencyClient<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
    deadline: Duration,
}

#[derive(Deserialize)]
struct SearchSet {
    #[serde(rename = "resourceType")]
    resource_type: String,
    #[serde(default)]
    link: Vec<Link>,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Link {
    relation: String,
    url: String,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "fullUrl")]
    full_url: Option<String>,
    resource: Option<Value>,
}

impl AgencyClient<'_> {
    /// What a failed call means: out of time (a connection, or its TLS handshake, that did
    /// not complete within the deadline), or unreachable.
    fn failure(self, error: &reqwest::Error) -> AgencyFailure {
        if error.is_timeout() {
            AgencyFailure::Timeout(self.deadline)
        } else if let Some(tls) = kinfold_http::tls::describe_failure(error) {
            AgencyFailure::Tls(tls)
        } else {
            AgencyFailure::Unreachable
        }
    }

    /// The person's Patient records there, then every record about them.
    async fn everything(self, nhs: &NhsNumber, query: &str) -> Result<Fetched, AgencyFailure> {
        let patients = self.patients(nhs).await?;
        let mut all = Fetched {
            truncated: patients.truncated,
            ..Fetched::default()
        };
        for patient in patients.records {
            let Some(id) = patient.resource.get("id").and_then(Value::as_str) else {
                continue;
            };
            let url = format!("{}/Patient/{}/$everything{query}", self.base, id);
            let fetched = self.follow(url).await?;
            all.records.extend(fetched.records);
            all.truncated |= fetched.truncated;
        }
        Ok(all)
    }

    /// One record by its URL: `None` when the agency does not have it.
    async fn read(self, url: String) -> Result<Option<AgencyRecord>, AgencyFailure> {
        let response = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, kinfold_fhir::FHIR_JSON)
            .send()
            .await
            .map_err(|e| self.failure(&e))?;
        match response.status() {
            reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::GONE => return Ok(None),
            status if !status.is_success() => return Err(AgencyFailure::Status(status.as_u16())),
            _ => {}
        }
        let bytes = response.bytes().await.map_err(|e| self.failure(&e))?;
        let resource: Value = serde_json::from_slice(&bytes).map_err(|_| AgencyFailure::Invalid)?;
        Ok(Some(AgencyRecord {
            full_url: url,
            resource,
        }))
    }

    async fn patients(self, nhs: &NhsNumber) -> Result<Fetched, AgencyFailure> {
        let mut url = reqwest::Url::parse(&format!("{}/Patient", self.base))
            .map_err(|_| AgencyFailure::Unreachable)?;
        url.query_pairs_mut().append_pair(
            "identifier",
            &format!("{NHS_NUMBER_SYSTEM}|{}", nhs.as_str()),
        );
        self.follow(url.to_string()).await
    }

    /// Fetches a searchset and its `next` pages.
    async fn follow(self, first: String) -> Result<Fetched, AgencyFailure> {
        let mut records = Vec::new();
        let mut truncated = false;
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            let page = self.page(&url).await?;
            records.extend(page.entry.into_iter().filter_map(|e| {
                Some(AgencyRecord {
                    full_url: e.full_url?,
                    resource: e.resource?,
                })
            }));
            let more = page
                .link
                .into_iter()
                .find(|l| l.relation == "next")
                .map(|l| l.url);
            if pages < MAX_PAGES {
                next = more;
            } else {
                truncated = more.is_some();
            }
        }
        Ok(Fetched { records, truncated })
    }

    async fn page(self, url: &str) -> Result<SearchSet, AgencyFailure> {
        let response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, kinfold_fhir::FHIR_JSON)
            .send()
            .await
            .map_err(|e| self.failure(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(AgencyFailure::Status(status.as_u16()));
        }
        let bytes = response.bytes().await.map_err(|e| self.failure(&e))?;
        let page: SearchSet = serde_json::from_slice(&bytes).map_err(|_| AgencyFailure::Invalid)?;
        if page.resource_type != "Bundle" {
            return Err(AgencyFailure::Invalid);
        }
        Ok(page)
    }
}
