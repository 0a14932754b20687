"""Regenerate the sample files (`python sample_data/make_samples.py`); the outputs are committed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl

HERE = Path(__file__).resolve().parent

CRM = """\
Customer Name,Mobile,City,Tags,Email
Ayesha Siddiqui,0301-2345678,Lahore,"VIP Clients, Lahore",ayesha@example.pk
Bilal Ahmed,0092 321 4567890,Karachi,Customers,bilal@example.pk
Hamza Qureshi,(0300) 765 4321,Rawalpindi,Customers,
Oliver Smith,+44 7911 123456,London,International,oliver@example.co.uk
Fatima Noor,923451234567,Islamabad,Customers,
Zainab Ali,,Multan,Customers,zainab@example.pk

Usman Tariq,12345,Lahore,Customers,
Ayesha S.,+92 301 2345678,Lahore,Newsletter,
Al,0312 3456789,Quetta,Customers,
Hina Baig,0333 5556677,Karachi,Customers,hina@example.pk
Imran Khan,042 35761234,Lahore,Suppliers,
Sara Javed,call me after 5,Karachi,Customers,
Kamran Akmal,0301 234567,Lahore,Customers,
Bilal Ahmed,03214567890,Karachi,VIP Clients,
Mehwish Hayat,0345-678 9012,Karachi,"VIP Clients; Karachi",
Danish Taimoor,0300-1234567 ext 22,Lahore,Suppliers,
Nadia Jamil,9.23E+11,Lahore,Customers,
"""

EUROPE = """\
First Name;Last Name;Mobile;Country;Groups
Zoë;Müller;0151 23456789;DE;Europe
François;Lefèvre;06 12 34 56 78;France;Europe
José;Álvarez;612 34 56 78;ES;Europe
Søren;Kierkegård;+45 20 12 34 56;;Europe
Renée;Dubois;0612345678;FR;Europe
Jürgen;Weiß;0176 98765432;Germany;Europe
Åsa;Öberg;070-123 45 67;Narnia;Europe
"""


def main() -> None:
    (HERE / "crm_export.csv").write_text(CRM, encoding="utf-8", newline="\r\n")
    (HERE / "europe_contacts.csv").write_text(EUROPE, encoding="cp1252", newline="\r\n")
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Contacts"
    ws.append(["Name", "Phone", "Group"])
    ws.append(["Rashid Mehmood", 923001112233, "Wholesale"])
    ws.append(["Samina Peerzada", 923001112233.0, "Wholesale"])
    ws.append(["Tariq Aziz", 3001112244, "Retail"])
    ws.append(["Uzma Gillani", "0300 1112255", "Retail"])
    ws.append([None, None, None])
    ws.append(["Waqar Younis", 3219876543, "Retail, Wholesale"])
    ws.append(["Yasir Hussain", dt.date(2023, 3, 1), "Retail"])
    ws.append(["Saba Qamar", -3001112266, "Retail"])
    ws.append(["Ahsan Khan", 1.5, "Retail"])
    ws.column_dimensions["A"].width = 20
    ws.column_dimensions["B"].width = 16
    events = wb.create_sheet("Events")
    events.append(["Name", "Phone", "Group"])
    events.append(["Nida Yasir", 3331234567, "Expo 2025"])
    events.append(["Rashid Mehmood", "+92 300 1112233", "Expo 2025"])
    wb.save(HERE / "contacts.xlsx")


if __name__ == "__main__":
    main()
