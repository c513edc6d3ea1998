# make_kms_key.rb: the Lockbox half of tests/vectors/lockbox/kms_key.json.
#
# Run once (see SOURCE.md); the output is checked in and the tests never run
# Ruby. It encrypts known strings with the real Lockbox gem (Debian 12
# ruby-lockbox 0.6.4) under the data key 0x00..0x1f, which is the plaintext
# of the stored kms_encrypted value in the same file, exactly as a Rails model
# with `has_kms_key` and `encrypts :email, key: :kms_key` writes its
# email_ciphertext column: Lockbox.new(key: kms_key, encode: true), the
# default algorithm aes-gcm, a random nonce from SecureRandom. Each value is
# then decrypted again by Lockbox as a self-check.
#
#   ruby -rstringio make_kms_key.rb > lockbox_part.json
#
# (-rstringio: lockbox 0.6.4's lockbox/io.rb subclasses StringIO without
# requiring it.)
require "json"
require "lockbox"

KEY = (0..31).map(&:chr).join.b

CASES = [
  ["email", "alice@example.org".b, nil],
  ["empty", "".b, nil],
  ["utf8", "José Müller <jose@example.org> ✓".b, nil],
  ["binary", (0..255).map(&:chr).join.b, nil],
  ["long", ("0123456789abcdef" * 256 + "xyz").b, nil],
  ["associated_data", "alice@example.org".b, "users.email_ciphertext.1"],
]

out = CASES.map do |name, message, ad|
  box = Lockbox.new(key: KEY, encode: true)
  opts = ad ? { associated_data: ad } : {}
  ct = box.encrypt(message, **opts)
  raise "round trip" unless box.decrypt(ct, **opts) == message
  {
    "name" => name,
    "plaintext_hex" => message.unpack1("H*"),
    "associated_data" => ad,
    "ciphertext_b64" => ct,
  }
end

puts JSON.pretty_generate({
  "lockbox_version" => Lockbox::VERSION,
  "ruby_version" => RUBY_VERSION,
  "openssl" => OpenSSL::OPENSSL_LIBRARY_VERSION,
  "lockbox" => out,
})
