fn main() {
    println!("stadtwache (work in progress)");
}
