# check_kms_key.rb: Lockbox itself opens every box in kms_key.json, those it
# made (the "lockbox" list) and those libkmsclient's kms_box_seal_b64 made
# (the "kmsd_sealed" list), under the data key 0x00..0x1f.
#
#   ruby -rstringio check_kms_key.rb kms_key.json
require "json"
require "lockbox"

KEY = (0..31).map(&:chr).join.b
v = JSON.parse(File.read(ARGV.fetch(0)))
raise "data key" unless [v["data_key"]["plaintext_hex"]].pack("H*") == KEY

n = 0
(v["lockbox"] + v["kmsd_sealed"]).each do |c|
  box = Lockbox.new(key: KEY, encode: true)
  opts = c["associated_data"] ? { associated_data: c["associated_data"] } : {}
  got = box.decrypt(c["ciphertext_b64"], **opts)
  raise "#{c["name"]}: wrong plaintext" unless got == [c["plaintext_hex"]].pack("H*")
  # and a wrong associated data must not open it
  begin
    box.decrypt(c["ciphertext_b64"], associated_data: "other")
    raise "#{c["name"]}: opened under other associated data"
  rescue Lockbox::DecryptionError
  end
  n += 1
end
puts "lockbox #{Lockbox::VERSION} opened #{n} boxes"
