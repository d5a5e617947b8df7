resource "terraform_data" "old" {
  input = "x"
}
resource "terraform_data" "gone" {
  input = "g"
}
resource "terraform_data" "nums" {
  input = { n = 1.5, big = 12345678901234567890, nul = null, empty = [], emptym = {} }
}
resource "terraform_data" "still" {
  input = "s"
}
