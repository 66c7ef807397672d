' SmtpBridge.Application driven as a host's script drives Outlook (ABI.md §19),
' run by scripts/windows/test.sh with Wine's cscript (64-bit, and 32-bit from
' C:\windows\syswow64 with the x86 DLL):
'
'   cscript //nologo comtest.vbs ARCH FILE1 FILE2 DOCS DATADIR TLSPORT CAFILE
'
' Sends "COM (ARCH) Ä" (To/CC/BCC with display names, a recipient added as CC,
' HTMLBody, FILE1 and FILE2 as "Übersicht €.txt") and reads its status by
' EntryID; writes DOCS\com-saved-ARCH.eml by SaveAs(…, 3) and displays the
' same mail (the mail of tests/windows/mapitest.c's MAPISendMailW); checks that
' an unsupported member, olMSG, a mail over SMTPMaxMessageBytes and a send
' refused by the STARTTLS server at TLSPORT (wrong password) raise errors
' naming them, the last with the library's advice.
' The server side is checked by check_mail.py and same_mime.py. Exits 1 at
' the first failure.
Option Explicit

Const DISP_E_EXCEPTION = &H80020009
Dim arch, file1, file2, docs, dataDir, tlsPort, ca
arch = WScript.Arguments(0)
file1 = WScript.Arguments(1)
file2 = WScript.Arguments(2)
docs = WScript.Arguments(3)
dataDir = WScript.Arguments(4)
tlsPort = WScript.Arguments(5)
ca = WScript.Arguments(6)

Sub Check(condition, text)
    If Not condition Then
        WScript.Echo "comtest.vbs: FAIL: " & text
        WScript.Quit 1
    End If
End Sub

' The error of the last statement run under On Error Resume Next.
Sub CheckError(what, expected)
    Check Err.Number = DISP_E_EXCEPTION, what & ": Err.Number " & Hex(Err.Number) & ", expected 80020009 (" & Err.Description & ")"
    Check Err.Source = "SmtpBridge", what & ": Err.Source " & Err.Source
    Check InStr(Err.Description, expected) > 0, what & ": Err.Description " & Err.Description & " lacks " & expected
    WScript.Echo "ok: " & what & " raised: " & Err.Description
    Err.Clear
End Sub

' Non-ASCII text by Chr in the ANSI code page (1252): Wine's VBScript has no ChrW.
Dim hans, overview, html
hans = """M" & Chr(252) & "ller, Hans"" <hans@example.com>"
overview = Chr(220) & "bersicht " & Chr(128) & ".txt"
html = "<p>Dear client,<br>your invoice is attached.</p>"

Dim app, ns
Set app = CreateObject("SmtpBridge.Application")
Check app.Name = "SmtpBridge", "Application.Name " & app.Name
Check app.DataDir = dataDir, "Application.DataDir " & app.DataDir
Set ns = app.GetNamespace("MAPI")
ns.Logon
Check ns.CurrentUser.Address = "office@firm.example", "CurrentUser.Address " & ns.CurrentUser.Address
Check ns.CurrentUser.Name = "Office", "CurrentUser.Name " & ns.CurrentUser.Name
Check app.Session.CurrentUser.Address = "office@firm.example", "Application.Session"

' The mail a host sends.
Dim mail, second
Set mail = app.CreateItem(0)
mail.To = hans
mail.CC = "cc@example.com"
mail.BCC = "bcc@example.com"
Set second = mail.Recipients.Add("Second CC <cc2@example.com>")
second.Type = 2
Check second.Resolve, "Recipient.Resolve"
Check second.Address = "cc2@example.com", "Recipient.Address " & second.Address
Check mail.cc = "cc@example.com; Second CC <cc2@example.com>", "MailItem.CC " & mail.CC
mail.Subject = "COM (" & arch & ") " & Chr(196)
mail.HTMLBody = html
mail.Importance = 2
mail.Attachments.Add file1
mail.Attachments.Add file2, 1, , overview
Check mail.Attachments.Count = 2, "Attachments.Count " & mail.Attachments.Count
Check mail.Attachments.Item(2).DisplayName = overview, "Attachment.DisplayName " & mail.Attachments.Item(2).DisplayName
Dim attachment, names
For Each attachment In mail.Attachments
    names = names & attachment.FileName & "|"
Next
Check names = "Invoice 2026-117.txt|" & overview & "|", "For Each over Attachments: " & names
mail.Send
Dim id, status
id = mail.EntryID
Check Len(id) > 0, "no EntryID after Send"
status = app.Status(id)
Check InStr(status, """id"":""" & id & """") > 0, "Status(" & id & ") is " & status
Check InStr(status, """state"":""sent""") > 0, "Status(" & id & ") is " & status
WScript.Echo "ok: sent " & id & ": " & status

On Error Resume Next
Dim flag
flag = mail.FlagStatus
CheckError "MailItem.FlagStatus", "MailItem.FlagStatus is not supported by smtpbridge"
mail.Send
CheckError "a second Send", "the item was sent already"
On Error GoTo 0

' The mail of mapitest.c's MAPISendMailW, saved and displayed, not sent.
Dim same
Set same = app.CreateItem(0)
same.To = hans
same.CC = "cc@example.com"
same.BCC = "bcc@example.com"
same.Subject = "MAPI wide (" & arch & ") " & Chr(196)
same.HTMLBody = html
same.Attachments.Add file1
same.Attachments.Add file2, , , overview
same.SaveAs docs & "\com-saved-" & arch & ".eml", 3
On Error Resume Next
same.SaveAs docs & "\com-saved-" & arch & ".msg", 0
CheckError "SaveAs olMSG", "MailItem.SaveAs as olMSG (0) is not supported by smtpbridge"
On Error GoTo 0
same.Display
Check same.EntryID = "", "Display sent the mail: EntryID " & same.EntryID

' A send error: the library's result name and text.
app.Configure "SMTPMaxMessageBytes=100"
Dim large
Set large = app.CreateItem(0)
large.To = "client@example.com"
large.Subject = "COM too large (" & arch & ")"
large.Body = "This mail is larger than 100 bytes of MIME."
On Error Resume Next
large.Send
Check Left(Err.Description, 19) = "SMTPB_ERR_MESSAGE: ", "the send error's description: " & Err.Description
CheckError "Send of a mail over SMTPMaxMessageBytes", "SMTPMaxMessageBytes of profile"
Check large.EntryID = "", "a refused mail has an EntryID"
On Error GoTo 0
app.Configure "SMTPMaxMessageBytes=36700160"

' A mail that fails for good: the STARTTLS server refuses the password.
app.Configure "SMTPServerPort=" & tlsPort & vbCrLf & "SMTPServerEncryption=TLS" & vbCrLf & "SMTPCaFile=" & ca & vbCrLf & _
    "SMTPAuthentication=Required" & vbCrLf & "SMTPUsername=anna" & vbCrLf & "SMTPPassword=wrong-pass-123"
Dim refused
Set refused = app.CreateItem(0)
refused.To = "client@example.com"
refused.Subject = "COM refused (" & arch & ")"
refused.Body = "The server refuses this sender's password."
On Error Resume Next
refused.Send
Check Left(Err.Description, 16) = "SMTPB_ERR_AUTH: ", "the send error's description: " & Err.Description
Check InStr(Err.Description, "wrong-pass-123") = 0, "the password is in the error: " & Err.Description
CheckError "Send refused by the server", "Advice (auth_failed): The server refused the username or password."
On Error GoTo 0
ns.Logoff
app.Quit
WScript.Echo "comtest.vbs: ok (" & arch & ")"
