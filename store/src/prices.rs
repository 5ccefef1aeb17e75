//! The one table of object-store prices Inlet estimates costs with: what `inlet status` and
//! `inlet bench` multiply the request counts of [`Op`] by. Prices are assumptions, stated
//! wherever a cost is shown; change them here and both follow.

use crate::Op;

/// Request prices of an object store, in USD per 1,000 requests (serialized as `inlet bench`
/// states them in its JSON report).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct RequestPrices {
    /// Where the prices come from, and what they leave out.
    pub source: &'static str,
    /// When they were taken from the source (`YYYY-MM`).
    pub as_of: &'static str,
    /// PUT, COPY, POST (multipart start and completion), LIST.
    pub put_copy_post_list_per_1000: f64,
    /// GET and HEAD (a `get_ranges` call is counted as one GET).
    pub get_head_per_1000: f64,
    /// DELETE and multipart abort.
    pub delete_per_1000: f64,
}

/// S3 Standard request prices, us-east-1 list prices as published on
/// <https://aws.amazon.com/s3/pricing/>, taken 2026-11. Storage per GB-month and data
/// transfer are not priced.
pub const S3_STANDARD: RequestPrices = RequestPrices {
    source: "AWS S3 Standard request list prices, us-east-1, assumed as of 2026-11 (check \
             https://aws.amazon.com/s3/pricing/); storage per GB-month and data transfer are \
             not included",
    as_of: "2026-11",
    put_copy_post_list_per_1000: 0.005,
    get_head_per_1000: 0.0004,
    // S3 charges nothing for DELETE or for aborting a multipart upload.
    delete_per_1000: 0.0,
};

impl RequestPrices {
    /// The price per 1,000 requests of `op`. A rename is a COPY (plus a free DELETE) on S3.
    pub fn per_1000(&self, op: Op) -> f64 {
        match op {
            Op::Put
            | Op::PutMultipart
            | Op::PutPart
            | Op::CompleteMultipart
            | Op::Copy
            | Op::Rename
            | Op::List
            | Op::ListWithDelimiter => self.put_copy_post_list_per_1000,
            Op::Get | Op::Head | Op::GetRanges => self.get_head_per_1000,
            Op::Delete | Op::AbortMultipart => self.delete_per_1000,
        }
    }

    /// The price of one request of `op`.
    pub fn per_request(&self, op: Op) -> f64 {
        self.per_1000(op) / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_writes_and_deletes_are_priced_apart() {
        let p = S3_STANDARD;
        assert_eq!(p.per_1000(Op::Put), 0.005);
        assert_eq!(p.per_1000(Op::CompleteMultipart), 0.005);
        assert_eq!(p.per_1000(Op::ListWithDelimiter), 0.005);
        assert_eq!(p.per_1000(Op::GetRanges), 0.0004);
        assert_eq!(p.per_1000(Op::Head), 0.0004);
        assert_eq!(p.per_1000(Op::AbortMultipart), 0.0);
        assert_eq!(p.per_request(Op::Get), 0.0004 / 1000.0);
    }
}
