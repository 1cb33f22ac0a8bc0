//! The integration tests, one binary: drive the real `xai-audit` binary on the
//! shipped assets and on files made in each test, and check the library's
//! numbers against PyTorch references and finite differences.

mod it;
