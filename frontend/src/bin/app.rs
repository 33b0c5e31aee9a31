//! The participant's landing page: the lesson track.

fn main() {
    app::lab();
}
