# Reads a message file with Python's email package (policy.default) and
# prints, as JSON, what a mail client would show: the reference reader of
# the interop tests (mail/message, internal/cli).
import sys, json, base64, email
from email import policy
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=policy.default)
def addrs(name):
    h = m[name]
    return [] if h is None else [[a.display_name, a.addr_spec] for a in h.addresses]
body = m.get_body(preferencelist=('plain',))
html = m.get_body(preferencelist=('html',))
atts = []
for a in m.iter_attachments():
    atts.append({'filename': a.get_filename(), 'type': a.get_content_type(),
                 'data': base64.b64encode(a.get_payload(decode=True)).decode()})
defects = [type(d).__name__ for p in m.walk() for d in p.defects]
print(json.dumps({'subject': str(m['subject']), 'from': addrs('from'), 'to': addrs('to'), 'cc': addrs('cc'),
                  'bcc': m['bcc'], 'text': body.get_content() if body else None,
                  'html': html.get_content() if html else None,
                  'type': m.get_content_type(), 'attachments': atts, 'defects': defects}))
