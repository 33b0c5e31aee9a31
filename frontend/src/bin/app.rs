//! The participant's page: the lab and its lessons.

fn main() {
    app::lab();
}
