"""Name and street lists for the synthetic territory, with Zipf-like weights.

The lists are the most frequent French surnames and recent first names (public frequency
rankings); weights decrease with rank so draws look realistic. They are drawn at random for
fictitious pupils: no real person is described.
"""

from __future__ import annotations

import numpy as np

SURNAMES = """Martin Bernard Thomas Petit Robert Richard Durand Dubois Moreau Laurent Simon Michel Lefebvre
Leroy Roux David Bertrand Morel Fournier Girard Bonnet Dupont Lambert Fontaine Rousseau Vincent Muller
Lefèvre Faure André Mercier Blanc Guérin Boyer Garnier Chevalier François Legrand Gauthier Garcia Perrin
Robin Clément Morin Nicolas Henry Roussel Mathieu Gautier Masson Marchand Duval Denis Dumont Marie Lemaire
Noël Meyer Dufour Meunier Brun Blanchard Giraud Joly Rivière Lucas Brunet Gaillard Barbier Arnaud Martinez
Gérard Roche Renard Schmitt Roy Leroux Colin Vidal Caron Picard Roger Fabre Aubert Lemoine Renaud Dumas
Lacroix Olivier Philippe Bourgeois Pierre Benoît Rey Leclerc Payet Rolland Leclercq Guillaume Lecomte
Lopez Jean Dupuy Guillot Hubert Berger Carpentier Sanchez Dupuis Moulin Louis Deschamps Huet Vasseur
Perez Boucher Fleury Royer Klein Jacquet Adam Paris Poirier Marty Aubry Guyot Carré Charles Renault
Charpentier Ménard Maillard Baron Bertin Bailly Hervé Schneider Fernandez Le_Gall Collet Léger Bouvier
Julien Prévost Millet Perrot Daniel Le_Roux Cousin Germain Breton Besson Langlois Rémy Le_Goff Pelletier
Lévêque Perrier Leblanc Barré Lebrun Marchal Weber Mallet Hamon Boulanger Jacob Monnier Michaud Rodriguez
Guichard Gillet Étienne Grondin Poulain Tessier Chevallier Collin Chauvin Da_Silva Bouchet Gay Lemaître
Bénard Maréchal Humbert Reynaud Antoine Hoarau Perret Barthélemy Cordier Pichon Lejeune Gilbert Lamy
Delaunay Pasquier Carlier Laporte Cazenave Lafitte Dupouy Lacoste Labat Carrère Fourcade Abadie Soulé
Cazaux Domec Lassalle Peyrou Duthil Sarrat Baylac Castéran Verdier Cœurdacier D’Almeida N’Diaye""".split()

GIRLS = """Jade Louise Emma Alice Ambre Lina Rose Chloé Mia Léa Anna Mila Julia Romy Lou Inès Léna Agathe
Juliette Inaya Nina Zoé Léonie Jeanne Iris Eva Lola Victoire Charlotte Adèle Camille Manon Sarah Louna
Margaux Capucine Romane Olivia Alba Giulia Clémence Lucie Maëlys Candice Elena Victoria Léana Mathilde
Héloïse Sofia Lya Thaïs Maya Aya Éléna Nour Apolline Gabrielle Margot Marie Joséphine Céleste""".split()

BOYS = """Gabriel Léo Raphaël Arthur Louis Jules Adam Maël Lucas Hugo Noah Liam Gabin Sacha Paul Nathan
Aaron Mohamed Ethan Tom Éden Léon Noé Tiago Théo Isaac Marius Victor Ayden Martin Naël Mathis Axel Robin
Timéo Enzo Marceau Valentin Nino Eliott Nolan Malo Milo Antoine Samuel Augustin Amir Lyam Rayan Yanis
Côme Baptiste Clément Mathéo Oscar Simon Kylian Alexandre Thomas Évan""".split()

ADULT_WOMEN = """Aurélie Céline Julie Émilie Sandrine Stéphanie Élodie Caroline Laetitia Virginie Nathalie Audrey
Sophie Marion Mélanie Anne Claire Amandine Laura Sarah Karine Delphine Jennifer Pauline Vanessa Hélène
Camille Anaïs Charlotte Émeline Fanny Jessica Marine Cécile Sabrina Morgane Coralie Lucie Manon Chloé""".split()

ADULT_MEN = """Nicolas Julien Sébastien Guillaume Jérôme Mathieu Christophe Stéphane David Cédric Thomas Alexandre
Romain Vincent Frédéric Anthony Maxime Laurent Olivier Fabien Arnaud Benjamin Damien Yann Florian Kévin
Jonathan Mickaël Pierre Antoine Franck Grégory Ludovic Thierry Jean Loïc Rémi Xavier Bruno Adrien""".split()

STREET_TYPES = [("Rue", 0.46), ("Avenue", 0.08), ("Chemin", 0.12), ("Impasse", 0.07), ("Place", 0.04),
                ("Allée", 0.06), ("Route", 0.08), ("Boulevard", 0.03), ("Lotissement", 0.03), ("Rue", 0.0),
                ("Square", 0.01), ("Passage", 0.01), ("Faubourg", 0.01)]

STREET_NAMES = """de la Gare|du Moulin|de l'Église|des Écoles|de la Mairie|Victor Hugo|Jean Jaurès|Jules Ferry|Pasteur|
du Général de Gaulle|de la République|de la Paix|des Lilas|des Tilleuls|des Acacias|des Pyrénées|du Stade|
de la Fontaine|du Château|des Prés|du Pic du Midi|de l'Adour|des Vignes|du Lavoir|du Pont|de la Croix|
Gambetta|Voltaire|Émile Zola|Anatole France|Jean Moulin|Marie Curie|Louis Pasteur|de Verdun|du 8 Mai 1945|
du 11 Novembre|des Sports|de la Forêt|des Chênes|des Érables|des Peupliers|des Bleuets|des Coquelicots|
des Mimosas|des Roses|des Jardins|du Parc|de la Poste|du Marché|de la Liberté|Georges Clemenceau|
Carnot|Foch|Maréchal Joffre|Alsace-Lorraine|de Bordeaux|de Toulouse|de Pau|de Lourdes|de Tarbes|
du Canal|de la Rivière|des Sources|du Bois|des Près Verts|des Sorbiers|des Noisetiers|des Cerisiers|
des Pommiers|des Platanes|du Soleil|des Alouettes|des Hirondelles|des Mésanges|des Fauvettes|
Saint-Jean|Saint-Pierre|Sainte-Anne|Saint-Martin|Notre-Dame|de l’Œuvre|des Artisans|de l'Industrie|
du Commerce|des Tanneurs|des Forges|de la Tuilerie|de la Briqueterie|du Four|de la Chapelle|du Calvaire|
des Bergers|des Moissons|des Granges|de la Ferme|du Col|des Cimes|du Tourmalet|d'Aspin|de la Neste|
de l'Échez|de l'Arros|du Gave|des Baïses|Henri IV|Bernadette Soubirous|Théophile Gautier|Ferdinand Foch|
Jean Moulin prolongée|Paul Bert|Condorcet|Aristide Briand|Léon Blum|Jean Monnet|Pierre Mendès France|
Simone Veil|Lucie Aubrac|Jacques Prévert|Antoine de Saint-Exupéry|Albert Camus|Louise Michel|Danton|
Denis Diderot|Montesquieu|Rabelais|Molière|Racine|Lamartine|Alfred de Musset|George Sand|Colette|
des Bruyères|des Genêts|des Fougères|des Lavandes|des Oliviers|des Magnolias|des Cèdres|des Pins|
des Saules|des Aulnes|des Frênes|des Ormeaux|du Verger|du Pré Long|de la Plaine|du Coteau|des Collines|
de la Vallée|du Ruisseau|de l'Étang|du Lac|des Marronniers|des Vergers|de la Croix Blanche|du Puits|
de la Halle|du Centre|de la Bastide|des Remparts|du Couvent|des Cordeliers|des Carmes|Larrey|Massey|
Foucault|Ledru-Rollin|Maubourguet|Vic|Rabastens|Argelès|Cauterets|Luz|Barèges|Campan|Payolle""".replace("\n", "").split("|")

PUBLIC_SCHOOL_NAMES = """Jean Jaurès|Jules Ferry|Victor Hugo|Pasteur|Les Tilleuls|Jean Moulin|Marie Curie|Le Bourg|
Jacques Prévert|Paul Bert|Condorcet|Les Lilas|Jean de La Fontaine|Louise Michel|Simone Veil|Les Acacias|
Le Centre|Saint-Exupéry|Lucie Aubrac|Les Pyrénées|Voltaire|Anatole France|Pierre Brossolette|
Georges Brassens|Les Marronniers|Le Parc|Théophile Gautier|Massey|Jules Verne|Desnos""".replace("\n", "").split("|")

PRIVATE_SCHOOL_NAMES = ["Sainte-Marie", "Notre-Dame", "Saint-Joseph", "Jeanne d'Arc", "Saint-Pierre",
                        "Sainte-Thérèse", "Immaculée Conception", "Saint-Vincent", "La Providence"]

BIRTH_PLACES_OUTSIDE = ["Toulouse", "Pau", "Bordeaux", "Paris", "Auch", "Montpellier", "Lyon", "Bayonne"]


def zipf_weights(n: int, s: float = 0.8) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    return w / w.sum()


def clean(names: list[str]) -> list[str]:
    return [n.replace("_", " ") for n in names]


SURNAMES = clean(SURNAMES)
